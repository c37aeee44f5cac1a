"""The install registers both extensions: `jupyter ... list` shows them enabled and OK."""

import re
import subprocess
import sys
from pathlib import Path

from jupyter_training import __version__

JUPYTER = str(Path(sys.executable).parent / "jupyter")


def run(*args: str) -> str:
    result = subprocess.run([JUPYTER, *args], capture_output=True, text=True, timeout=120)
    return result.stdout + result.stderr


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_server_extension_is_enabled_and_ok():
    out = plain(run("server", "extension", "list"))
    assert re.search(r"jupyter_training\s+enabled", out), out
    assert re.search(rf"jupyter_training {re.escape(__version__)} OK", out), out


def test_labextension_is_enabled_and_ok():
    out = plain(run("labextension", "list"))
    assert re.search(rf"jupyter-training v{re.escape(__version__)} enabled\s+OK", out), out


def test_frontend_and_backend_versions_match():
    import json

    package = json.loads((Path(__file__).parents[1] / "labextension" / "package.json").read_text())
    assert package["version"] == __version__
