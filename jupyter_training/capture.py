"""Cell capture: a cell plus the notebook names it reads, as a self-contained payload.

The cell's free names are found by static analysis (``symtable``), then each
name found in the notebook namespace travels the cheapest faithful way:

* modules, and functions or classes of importable modules, are re-imported by name;
* functions and classes defined in the notebook travel as source, and the names
  *they* read are captured in turn;
* anything else is pickled (protocol 5, large buffers kept out of band so a big
  array is not copied while packing).

Names that cannot travel raise :class:`CaptureError` before anything launches.
The payload file is read back by the stdlib-only worker runtime
(:mod:`jupyter_training.runtime.payload`).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import dataclasses
import importlib
import inspect
import io
import linecache
import pickle
import pickletools
import symtable
import sys
import textwrap
import types
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .runtime.payload import Payload, ValueBlob
from .runtime.tensors import reduce_tensor

DEFAULT_MAX_PAYLOAD_BYTES = 512 * 1024 * 1024


class CaptureError(ValueError):
    """A cell or notebook name that cannot travel to the workers."""


@dataclasses.dataclass
class _Found:
    imports: list[tuple[str, str, str | None]] = dataclasses.field(default_factory=list)
    definitions: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    values: list[ValueBlob] = dataclasses.field(default_factory=list)


def capture_cell(
    cell: str,
    namespace: Mapping[str, Any],
    *,
    hidden: Iterable[str] = (),
    history: Iterable[str] = (),
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    filename: str = "<cell>",
    files: Iterable[str] = (),
    root: Path | None = None,
) -> Payload:
    """Package ``cell`` with the names of ``namespace`` it uses.

    ``hidden`` names (IPython's ``In``, ``Out``, ...) are never shipped;
    ``history`` holds earlier cell sources, used to find the source of notebook
    classes when ``inspect`` cannot. Raises :class:`CaptureError` naming the
    line or the variable at fault.
    """
    tree = _parse(cell, filename)
    wanted = (_free_names(cell, filename) | _augmented_names(tree)) - _assigned_before_use(tree)
    capturer = _Capturer(namespace, set(hidden), list(history))
    with namespace_as_main(namespace):
        found = capturer.run(sorted(wanted))
    payload = Payload(
        cell=cell,
        filename=filename,
        imports=found.imports,
        definitions=list(reversed(found.definitions)),
        values=found.values,
        files=collect_files(files, root or Path.cwd()),
    )
    _check_size(payload, max_bytes)
    return payload


@contextlib.contextmanager
def namespace_as_main(namespace: Mapping[str, Any]) -> Iterator[None]:
    """Let pickle find notebook classes as ``__main__.X`` while capturing.

    In a kernel the notebook namespace already is ``__main__``; embedded shells
    and tests may use another dict.
    """
    current = sys.modules.get("__main__")
    if current is not None and vars(current) is namespace:
        yield
        return
    stand_in = types.ModuleType("__main__")
    vars(stand_in).update(namespace)
    sys.modules["__main__"] = stand_in
    try:
        yield
    finally:
        if current is not None:
            sys.modules["__main__"] = current


def collect_files(paths: Iterable[str], root: Path) -> list[tuple[str, bytes]]:
    """Read ``--files`` (files or directories) as (relative path, bytes) pairs.

    Relative paths keep their layout; an absolute path ships under its base name.
    """
    collected: list[tuple[str, bytes]] = []
    for given in paths:
        path = Path(given) if Path(given).is_absolute() else root / given
        if not path.exists():
            raise CaptureError(f"--files: {given!r} does not exist (looked in {path.parent})")
        base = Path(path.name) if Path(given).is_absolute() else Path(given)
        if any(part == ".." for part in base.parts):
            raise CaptureError(
                f"--files: {given!r} leaves the working directory; "
                "use an absolute path to ship it under its own name"
            )
        members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for member in members:
            if "__pycache__" in member.parts:
                continue
            relative = base / member.relative_to(path) if path.is_dir() else base
            collected.append((relative.as_posix(), member.read_bytes()))
    return collected


def _parse(source: str, filename: str) -> ast.Module:
    try:
        return ast.parse(source, filename)
    except SyntaxError as err:
        line = (err.text or "").rstrip()
        raise CaptureError(
            f"the cell has a syntax error on line {err.lineno}: {err.msg}"
            + (f"\n    {line}" if line else "")
        ) from None


def _free_names(source: str, filename: str) -> set[str]:
    """Names read by ``source`` that it may take from the enclosing globals."""
    table = symtable.symtable(source, filename, "exec")
    names = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = list(table.get_children())
    while stack:
        child = stack.pop()
        stack.extend(child.get_children())
        for symbol in child.get_symbols():
            if symbol.is_referenced() and symbol.is_global():
                names.add(symbol.get_name())
    return names


def _augmented_names(tree: ast.Module) -> set[str]:
    """Top-level ``x += ...`` targets: they read ``x`` though symtable calls it a store."""
    return {
        node.target.id
        for node in _walk_same_scope(tree)
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name)
    }


def _assigned_before_use(tree: ast.Module) -> set[str]:
    """Top-level names whose first mention in the cell binds them without reading."""
    seen: set[str] = set()
    local: set[str] = set()
    for statement in tree.body:
        loads, stores = set(), set()
        for node in _walk_same_scope(statement):
            if isinstance(node, ast.Name):
                (stores if isinstance(node.ctx, ast.Store) else loads).add(node.id)
            elif isinstance(node, ast.alias):
                stores.add((node.asname or node.name).split(".")[0])
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                stores.add(node.name)
        if isinstance(statement, ast.AugAssign) or (
            isinstance(statement, ast.AnnAssign) and statement.value is None
        ):
            loads |= stores
        local |= (stores - loads) - seen
        seen |= loads | stores
    return local


def _walk_same_scope(node: ast.AST) -> Iterable[ast.AST]:
    """Like ``ast.walk`` but without entering function bodies or lambdas."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if current is not node and isinstance(
            current, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        ):
            continue
        stack.extend(ast.iter_child_nodes(current))


class _Capturer:
    def __init__(self, namespace: Mapping[str, Any], hidden: set[str], history: list[str]):
        self.namespace = namespace
        self.hidden = hidden
        self.history = history
        self.found = _Found()
        self.done: set[str] = set()

    def run(self, names: list[str]) -> _Found:
        queue = list(names)
        while queue:
            name = queue.pop(0)
            if name in self.done or name in self.hidden or name not in self.namespace:
                continue
            self.done.add(name)
            value = self.namespace[name]
            if name in vars(builtins) and value is vars(builtins)[name]:
                continue
            queue.extend(self._capture(name, value))
        return self.found

    def _capture(self, name: str, value: Any) -> set[str]:
        if isinstance(value, types.ModuleType):
            self.found.imports.append((name, value.__name__, None))
            return set()
        if _is_definition(value):
            origin = _import_origin(value)
            if origin is not None:
                self.found.imports.append((name, *origin))
                return set()
            if getattr(value, "__module__", None) == "__main__":
                source = self._source_of(name, value)
                self.found.definitions.append((name, source))
                return _free_names(source, f"<definition of {name}>") - {name}
        return self._pickle(name, value)

    def _source_of(self, name: str, value: Any) -> str:
        source = _definition_source(value) or _source_from_history(value, self.history)
        if source is None:
            kind = "class" if isinstance(value, type) else "function"
            raise CaptureError(
                f"cannot find the source of the notebook {kind} {name!r}: define it with "
                f"`def`/`class` in a notebook cell (not exec/eval) so it can travel to the workers"
            )
        tree = ast.parse(source)
        defined = _defined_names(tree)
        if getattr(value, "__name__", name) not in defined and name not in defined:
            raise CaptureError(
                f"{name!r} is a lambda or generated {type(value).__name__} that cannot travel: "
                f"define it with `def {name}(...)` in a notebook cell"
            )
        if getattr(value, "__name__", name) != name and name not in defined:
            source += f"\n{name} = {value.__name__}\n"
        return source

    def _pickle(self, name: str, value: Any) -> set[str]:
        buffers: list[pickle.PickleBuffer] = []
        try:
            data = _dumps(value, buffers.append)
        except Exception as err:
            raise CaptureError(
                f"notebook variable {name!r} ({type(value).__module__}.{type(value).__qualname__})"
                f" cannot be sent to the workers: {err}. Create it inside the cell instead, "
                "or turn it into something picklable"
            ) from None
        self.found.values.append(ValueBlob(name, data, [b.raw() for b in buffers]))
        return _main_globals(data)


class _OutOfBandPickler(pickle.Pickler):
    """Protocol 5 with large torch tensors' bytes kept out of band too."""

    def reducer_override(self, obj: Any) -> Any:
        return reduce_tensor(obj)


def _dumps(value: Any, buffer_callback: Any) -> bytes:
    if "torch" not in sys.modules:
        return pickle.dumps(value, protocol=5, buffer_callback=buffer_callback)
    stream = io.BytesIO()
    _OutOfBandPickler(stream, protocol=5, buffer_callback=buffer_callback).dump(value)
    return stream.getvalue()


def _is_definition(value: Any) -> bool:
    return isinstance(value, type | types.FunctionType | types.BuiltinFunctionType)


def _import_origin(value: Any) -> tuple[str, str] | None:
    """(module, qualname) that re-imports ``value``, or None if it is not importable."""
    module_name = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not module_name or not qualname or module_name == "__main__" or "<" in qualname:
        return None
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError):
        return None
    return (module_name, qualname) if target is value else None


def _definition_source(value: Any) -> str | None:
    try:
        return textwrap.dedent(inspect.getsource(value))
    except (OSError, TypeError):
        pass
    if isinstance(value, type):
        for member in vars(value).values():
            code = getattr(getattr(member, "__func__", member), "__code__", None)
            if code is None:
                continue
            source = _class_in_source("".join(linecache.getlines(code.co_filename)), value)
            if source:
                return source
    return None


def _source_from_history(value: Any, history: list[str]) -> str | None:
    for cell in reversed(history):
        source = _class_in_source(cell, value)
        if source:
            return source
    return None


def _class_in_source(source: str, value: Any) -> str | None:
    name = getattr(value, "__name__", None)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in reversed(tree.body):
        definition = ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        if isinstance(node, definition) and node.name == name:
            return _with_decorators(source, node)
    return None


def _with_decorators(source: str, node: ast.AST) -> str:
    lines = source.splitlines()
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    return textwrap.dedent("\n".join(lines[first - 1 : node.end_lineno])) + "\n"


def _defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
    return names


def _main_globals(data: bytes) -> set[str]:
    """Names of ``__main__`` classes/functions a pickle refers to (they must travel too)."""
    if b"__main__" not in data:
        return set()
    names: set[str] = set()
    strings: list[str] = []
    for opcode, arg, _ in pickletools.genops(data):
        if isinstance(arg, str):
            strings.append(arg)
        if opcode.name == "STACK_GLOBAL" and len(strings) >= 2 and strings[-2] == "__main__":
            names.add(strings[-1].split(".")[0])
        elif opcode.name == "GLOBAL" and isinstance(arg, str) and arg.startswith("__main__ "):
            names.add(arg.split(" ", 1)[1].split(".")[0])
    return names


def _check_size(payload: Payload, max_bytes: int) -> None:
    total = payload.nbytes()
    if total <= max_bytes:
        return
    sizes = [(v.name, v.nbytes()) for v in payload.values]
    sizes += [(f"--files {path}", len(data)) for path, data in payload.files]
    biggest = sorted(sizes, key=lambda item: item[1], reverse=True)[:3]
    listing = ", ".join(f"{name} ({_mb(size)})" for name, size in biggest)
    raise CaptureError(
        f"the captured notebook variables take {_mb(total)}, over the {_mb(max_bytes)} limit "
        f"(largest: {listing}). Load or build large data inside the cell, or raise "
        "c.TrainingApp.max_payload_bytes"
    )


def _mb(nbytes: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{nbytes} bytes"


def write_payload(payload: Payload, path: Path) -> None:
    """Write ``payload`` to ``path`` (private to the user)."""
    payload.write(path)
