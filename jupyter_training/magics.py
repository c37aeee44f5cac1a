"""``%%train_distributed`` and the ``%train_*`` line magics.

The cell magic builds a :class:`~jupyter_training.spec.JobSpec` from its
flags (defaults from ``c.TrainingApp``), submits the cell with the notebook
names it uses, and blocks while printing phases and every rank's output.
Interrupting the kernel cancels the job.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import frameworks
from .backends.base import SubmitError
from .capture import CaptureError
from .client import ResumeWarning, TrainingClient
from .errors import JobCancelledError, JobResultError, job_error
from .events import PHASES, STOP_PHASES, SUCCEEDED
from .scheduled import scheduler_tags
from .settings import load_settings
from .spec import (
    JobSpec,
    SpecError,
    parse_assignments,
    parse_env_assignments,
    parse_secret_env,
)
from .store import JobNotFound, JobRecord
from .tracking.compare import compare
from .tracking.where import FILTER_FLAGS, WhereError, filter_values
from .views import (
    UNLIMITED,
    Follower,
    TextJobView,
    WidgetJobView,
    format_job_table,
    html_job_table,
    make_view,
    widgets_available,
)
from .views.compare import CompareWidget, compare_text

_OUTPUT_CACHE_NAME = re.compile(r"^_+$|^_i+$|^_i?\d+$|^_(ih|oh|dh)$")


def spec_args(func: Callable[..., Any]) -> Callable[..., Any]:
    """Flags that describe the job (shared by every magic that builds a spec)."""
    decorators = [
        argument(
            "-f",
            "--framework",
            default="pytorch",
            metavar="NAME",
            help="Training framework (default: pytorch): "
            + "; ".join(f.help() for f in frameworks.all_frameworks())
            + ".",
        ),
        argument(
            "-w",
            "--workers",
            default="2",
            metavar="N|MIN:MAX",
            help="Number of worker processes / pods (default: 2); MIN:MAX runs elastic "
            "(PyTorch): the job goes on with the survivors while MIN remain.",
        ),
        argument("-g", "--gpus", type=int, default=0, help="GPUs per worker (default: 0)."),
        argument(
            "--nproc-per-worker",
            default="1",
            metavar="N|auto",
            help="Processes per worker, as torchrun's --nproc-per-node: a world of "
            "workers x N ranks; auto is one per GPU, else 1 (default: 1).",
        ),
        argument(
            "-b",
            "--backend",
            default=None,
            help="Where to run: local or kubernetes (default: c.TrainingApp.backend).",
        ),
        argument("--name", default=None, help="Job name, a DNS-1123 label (default: job-<id>)."),
        argument(
            "--env",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Environment variable for every worker (repeatable).",
        ),
        argument(
            "--secret-env",
            action="append",
            default=[],
            metavar="NAME[=SECRET/KEY]",
            help="Secret environment variable for every worker (repeatable): NAME takes the "
            "kernel's value, NAME=SECRET/KEY a Kubernetes Secret's key. Never stored or "
            "logged; masked as *** in worker output.",
        ),
        argument(
            "--max-restarts",
            type=int,
            default=None,
            help="Restart the whole group up to N times after a failure (default: 0; "
            "MAX-MIN for --workers MIN:MAX).",
        ),
        argument(
            "--timeout", type=float, default=None, help="Fail the job after this many seconds."
        ),
        argument(
            "--tag",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Label kept with the run, shown by runs() and sent to MLflow (repeatable).",
        ),
        argument(
            "--experiment",
            default=None,
            metavar="NAME",
            help="MLflow experiment of the run (default: the notebook's name).",
        ),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def cluster_args(func: Callable[..., Any]) -> Callable[..., Any]:
    """Flags for resources, placement and shipping (most apply to Kubernetes only)."""
    decorators = [
        argument(
            "--files",
            nargs="+",
            action="extend",
            default=[],
            metavar="PATH",
            help="Local modules, files or directories to ship into the job's directory.",
        ),
        argument("--cpu", default=None, help="CPU request per worker, e.g. 4 or 500m (k8s)."),
        argument("--memory", default=None, help="Memory per worker, e.g. 16Gi (k8s)."),
        argument(
            "--image",
            default=None,
            help="Container image (k8s; default c.TrainingApp.<framework>_image).",
        ),
        argument("--namespace", default=None, help="Namespace (k8s; default from kubeconfig)."),
        argument("--context", default=None, help="kubeconfig context (k8s)."),
        argument(
            "--api",
            choices=("auto", "v1", "v2"),
            default=None,
            help="Kubeflow API: v1 PyTorchJob/XGBoostJob/JAXJob/TFJob, v2 TrainJob (default auto).",
        ),
        argument("--runtime", default=None, help="TrainJob runtime (k8s, --api v2)."),
        argument(
            "--node-selector",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="Node label every worker must match (k8s, repeatable).",
        ),
        argument(
            "--pip",
            action="append",
            default=[],
            metavar="PKG",
            help="Package to pip-install in each worker at start (k8s, repeatable).",
        ),
        argument("--queue", default=None, help="Kueue/Volcano queue for gang scheduling (k8s)."),
        argument(
            "--volume",
            action="append",
            default=[],
            metavar="CLAIM:PATH",
            help="PersistentVolumeClaim to mount at PATH in every worker (k8s, repeatable).",
        ),
        argument(
            "--checkpoint",
            default=None,
            metavar="CLAIM:PATH",
            help="Where checkpoint_dir() lives on the cluster (k8s; default: the first --volume).",
        ),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def output_args(func: Callable[..., Any]) -> Callable[..., Any]:
    """Flags that say what comes back and how progress is shown (cell and attach magics)."""
    func = argument(
        "-o",
        "--out",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="Variables of rank 0 to bring back into the notebook when the job succeeds.",
    )(func)
    return argument(
        "--progress",
        choices=("auto", "widget", "text"),
        default="auto",
        help=(
            "Live view: auto (the widget in a kernel, with the log printed too when no "
            "page answers, as in headless runs), widget (the widget only), or text."
        ),
    )(func)


def run_args(func: Callable[..., Any]) -> Callable[..., Any]:
    """Flags that say how the cell waits for its job."""
    func = argument(
        "--dry-run",
        action="store_true",
        help="Print what would be created or started, and launch nothing.",
    )(func)
    return argument(
        "--detach", action="store_true", help="Return at once with the job id instead of waiting."
    )(func)


def filter_args(func: Callable[..., Any]) -> Callable[..., Any]:
    """The run filters (``--name``, ``--where``, ``--sort``, ...) shared with the CLI."""
    for flag, text in reversed(FILTER_FLAGS):
        func = argument(flag, default=None, help=text)(func)
    return func


def sweep_args(func: Callable[..., Any]) -> Callable[..., Any]:
    """What a sweep searches and how (``%%train_sweep``)."""
    decorators = [
        argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=DIST",
            help="A searched notebook name (repeatable): NAME=uniform(a,b), loguniform(a,b), "
            "int(a,b[,step]) or choice(v1,v2,...).",
        ),
        argument("--trials", type=int, default=10, help="How many trials (default: 10)."),
        argument("--parallel", type=int, default=1, help="Trial jobs at once (default: 1)."),
        argument(
            "--objective",
            default="loss:min",
            metavar="METRIC:min|max",
            help="The reported metric to optimize (default: loss:min).",
        ),
        argument(
            "--objective-mode",
            choices=("last", "best"),
            default="last",
            help="A trial's objective: its last reported value or its best (default: last).",
        ),
        argument(
            "--sampler",
            default="tpe",
            help="Optuna sampler: tpe, random or grid (default: tpe).",
        ),
        argument(
            "--prune",
            default="none",
            help="Stop hopeless trials early: median, asha or none (default: none).",
        ),
        argument(
            "--max-failures",
            type=int,
            default=None,
            help="Stop the sweep after N failed trials (default: half of --trials).",
        ),
        argument("--seed", type=int, default=None, help="Seed of the sampler."),
        argument(
            "--resume",
            default=None,
            metavar="SWEEP_ID",
            help="Continue a stopped sweep (its recorded cell and flags).",
        ),
    ]
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def job_id_arg(func: Callable[..., Any]) -> Callable[..., Any]:
    return argument(
        "job_id", help="Job id (or a unique prefix); attach and cancel also take a sweep's."
    )(func)


@magics_class
class TrainingMagics(Magics):
    """Magics that run notebook cells as distributed training jobs."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._client: TrainingClient | None = None

    @property
    def client(self) -> TrainingClient:
        if self._client is None:
            self._client = TrainingClient(load_settings(getattr(self.shell, "config", None)))
        return self._client

    @magic_arguments()
    @spec_args
    @cluster_args
    @output_args
    @run_args
    @cell_magic
    def train_distributed(self, line: str, cell: str) -> None:
        """Run the cell as a distributed PyTorch, XGBoost, JAX or TensorFlow job.

        The cell's notebook names (functions, classes, imports, values) travel
        with it; each worker sees the Kubeflow env contract.
        """
        args = parse_argstring(self.train_distributed, line)
        spec = self._build_spec(args)
        context = {
            "hidden": self._hidden_names(),
            "history": self._history(),
            "notebook": _notebook_path(self.shell),
        }
        try:
            if args.dry_run:
                print(self.client.dry_run(spec, cell, self.shell.user_ns, **context), end="")
                return
            record = self.client.submit(spec, cell, self.shell.user_ns, **context)
        except (CaptureError, SubmitError, SpecError) as err:
            raise UsageError(str(err)) from None
        except KeyboardInterrupt:  # the client cancels a half-launched job
            print("[jupyter-training] interrupted: cancelling job being launched", flush=True)
            raise
        if args.detach:
            TextJobView(record).show_submitted()
            print(
                f"[{record.name}] detached; watch with %train_attach {record.id} "
                f"or %train_logs {record.id} --follow, "
                f"stop with %train_cancel {record.id}"
            )
            return
        self._wait(record, args.progress)

    @magic_arguments()
    @sweep_args
    @spec_args
    @cluster_args
    @output_args
    @line_cell_magic
    def train_sweep(self, line: str, cell: str | None = None) -> dict[str, Any] | None:
        """Search hyperparameters with Optuna; every trial runs the cell as a distributed job.

        The trial's values are notebook names the cell reads (they shadow the
        notebook's own); the best trial's values come back as the cell's value.
        """
        from .sweeps.launch import check_resumable, create_sweep, record_refused_sweep
        from .sweeps.options import SweepSpec, parse_objective
        from .sweeps.space import parse_params

        args = parse_argstring(self.train_sweep, line)
        if args.resume:
            try:
                sweep = self.client.store.get_sweep(args.resume)
                check_resumable(sweep)
            except (JobNotFound, SpecError) as err:
                raise UsageError(str(err)) from None
            return self._run_sweep(sweep, args.progress)
        if not (cell or "").strip():
            raise UsageError("%%train_sweep needs a cell to run (or --resume SWEEP_ID)")
        notebook = _notebook_path(self.shell)
        try:
            metric, direction = parse_objective(_unquote(args.objective))
            spec = SweepSpec(
                params=tuple(parse_params([_unquote(p) or "" for p in args.param])),
                job=self._job_spec(args),
                metric=metric,
                direction=direction,
                trials=args.trials,
                parallel=args.parallel,
                objective_mode=args.objective_mode,
                sampler=args.sampler,
                prune=args.prune,
                max_failures=args.max_failures,
                seed=args.seed,
            )
            self.client.check_limits(spec.job)
        except SpecError as err:
            record_refused_sweep(
                self.client, None, args.name, cell or "", notebook, {"flags": line}, err
            )
            raise UsageError(str(err)) from None
        try:
            sweep = create_sweep(
                self.client,
                spec,
                cell or "",
                self.shell.user_ns,
                hidden=self._hidden_names(),
                history=self._history(),
                notebook=notebook,
            )
        except (CaptureError, SpecError) as err:
            raise UsageError(str(err)) from None
        return self._run_sweep(sweep, args.progress)

    @magic_arguments()
    @argument("job_id", help="The failed or cancelled job (id, prefix or name) to carry on.")
    @spec_args
    @cluster_args
    @output_args
    @run_args
    @line_cell_magic
    def train_resume(self, line: str, cell: str | None = None) -> None:
        """Carry on a failed or cancelled job: a new job with its recorded cell and flags
        (flags given here override them; a cell given here replaces its cell), in the same
        checkpoint lineage, so ``latest_checkpoint()`` returns where it stopped."""
        args = parse_argstring(self.train_resume, line)
        given = _given_flags(self.train_resume, line)
        try:
            full = self._job_spec(args).to_dict()
            changes = {field: full[field] for dest in given for field in _SPEC_FIELDS_OF[dest]}
            if "workers" in given and "max_restarts" not in given:
                changes["max_restarts"] = full["max_restarts"]  # elastic: MAX-MIN
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ResumeWarning)
                record = self.client.resume(
                    args.job_id,
                    changes,
                    cell if cell and cell.strip() else None,
                    self.shell.user_ns,
                    hidden=self._hidden_names(),
                    history=self._history(),
                    notebook=_notebook_path(self.shell),
                )
            for warning in caught:
                print(f"[jupyter-training] warning: {warning.message}", flush=True)
        except (JobNotFound, CaptureError, SubmitError, SpecError) as err:
            raise UsageError(str(err)) from None
        except KeyboardInterrupt:
            print("[jupyter-training] interrupted: cancelling job being launched", flush=True)
            raise
        print(
            f"[{record.name}] resuming job {record.parent_id} as {record.id} "
            f"(checkpoints of lineage {record.lineage})",
            flush=True,
        )
        if args.detach:
            TextJobView(record).show_submitted()
            print(f"[{record.name}] detached; watch with %train_attach {record.id}")
            return
        self._wait(record, args.progress)

    def _run_sweep(self, sweep: Any, progress: str) -> dict[str, Any] | None:
        from .errors import SweepFailedError
        from .sweeps.driver import SweepDriver
        from .views.follow import ui_poller
        from .views.sweep import SweepWidgetView, make_sweep_view

        view = make_sweep_view(progress)
        with ui_poller(isinstance(view, SweepWidgetView)) as poll_ui:
            driver = SweepDriver(self.client, sweep, view, on_state=lambda _: poll_ui())
            try:
                state = driver.run()
            except KeyboardInterrupt:
                print(f"[{sweep.name}] interrupted: every running trial was cancelled", flush=True)
                raise
            finally:
                view.close()
        best = state.best
        if state.phase != SUCCEEDED and best is None:
            raise SweepFailedError(state.sweep)
        if best is None:
            print(f"[{sweep.name}] no trial succeeded")
            return None
        print(
            f"[{sweep.name}] best: trial {best.number} ({best.job_id}) "
            f"{state.spec.metric}={best.value:.6g} with {best.params}"
        )
        if state.spec.job.out and best.job_id:
            self._bring_home_from(best.job_id, list(state.spec.job.out))
        if state.phase != SUCCEEDED:
            raise SweepFailedError(state.sweep)
        return dict(best.params)

    def _bring_home_from(self, job_id: str, names: list[str]) -> None:
        """``--out`` values of a finished job (the best trial) into the notebook."""
        record = self.client.get(job_id)
        follower = Follower(self.client, job_id, TextJobView(record))
        for event in self.client.events(job_id, follow=False):
            follower.results.feed(event)
        self._bring_home(record, follower, names)

    def _build_spec(self, args: Any) -> JobSpec:
        try:
            return self._job_spec(args)
        except SpecError as err:
            raise UsageError(str(err)) from None

    def _job_spec(self, args: Any) -> JobSpec:
        """The job the flags describe (raises ``SpecError``)."""
        workers: int | str = args.workers
        if isinstance(workers, str) and workers.strip().isdigit():
            workers = int(workers)
        max_restarts = args.max_restarts
        if max_restarts is None:  # elastic jobs go on after losing up to MAX-MIN workers
            low, sep, high = str(workers).partition(":")
            elastic = sep and low.isdigit() and high.isdigit()
            max_restarts = max(0, int(high) - int(low)) if elastic else 0
        return JobSpec(
            framework=args.framework,
            workers=workers,
            gpus=args.gpus,
            nproc_per_worker=args.nproc_per_worker,
            backend=args.backend or self.client.settings.backend,
            name=args.name,
            env=parse_env_assignments(args.env),
            secret_env=parse_secret_env(args.secret_env),
            max_restarts=max_restarts,
            timeout=args.timeout,
            files=args.files,
            cpu=args.cpu,
            memory=args.memory,
            image=args.image,
            namespace=args.namespace,
            context=args.context,
            api=args.api or self.client.settings.api,
            runtime=args.runtime,
            node_selector=parse_assignments("--node-selector", args.node_selector),
            pip=args.pip,
            queue=args.queue,
            volumes=args.volume,
            checkpoint=args.checkpoint,
            out=_names(args.out),
            tags={
                **scheduler_tags(),
                **parse_assignments("--tag", [_unquote(t) or "" for t in args.tag]),
            },
            experiment=_unquote(args.experiment),
        )

    def _wait(self, record: JobRecord, progress: str, out: list[str] | None = None) -> None:
        """Show the job live until it ends; bring results home or raise its failure."""
        view: TextJobView | WidgetJobView | None = None
        try:  # an interrupt at any point from here on cancels the job
            view = make_view(record, progress)
            view.show_submitted()
            follower = Follower(
                self.client, record.id, view, ui_events=isinstance(view, WidgetJobView)
            )
            follower.run()
        except KeyboardInterrupt:
            print(f"[{record.name}] interrupted: cancelling job {record.id} ...", flush=True)
            final = self.client.cancel(record.id)
            if view is not None:
                view.show_finished(final)
            raise
        finally:
            if view is not None:
                view.close()
        if follower.detached:
            print(f"[{record.name}] detached; the job keeps running: %train_attach {record.id}")
            return
        final = self.client.get(record.id)
        view.show_finished(final)
        if final.phase in STOP_PHASES:  # cancelled, or a sweep's pruned trial
            raise JobCancelledError(final)
        if final.phase != SUCCEEDED:
            raise job_error(final, self.shell.user_ns)
        wanted = out if out is not None else list(final.spec.out)
        self._bring_home(final, follower, wanted)

    def _bring_home(self, record: JobRecord, follower: Follower, names: list[str]) -> None:
        if not names:
            return
        values = {
            name: value
            for name, value in follower.results.values(self.shell.user_ns).items()
            if name in names
        }
        self.shell.user_ns.update(values)
        if values:
            print(f"[{record.name}] returned {', '.join(sorted(values))} from rank 0")
        problems = [
            follower.results.errors.get(n) or f"{n!r} did not arrive from rank 0"
            for n in names
            if n not in values
        ]
        if problems:
            raise JobResultError(record, problems)

    def _hidden_names(self) -> set[str]:
        hidden = getattr(self.shell, "user_ns_hidden", {})
        user_ns = self.shell.user_ns
        names = {name for name, value in hidden.items() if user_ns.get(name) is value}
        names |= {name for name in user_ns if _OUTPUT_CACHE_NAME.match(name)}
        return names

    def _history(self) -> list[str]:
        manager = getattr(self.shell, "history_manager", None)
        return list(getattr(manager, "input_hist_raw", []) or [])

    @magic_arguments()
    @argument("-n", "--limit", type=int, default=20, help="How many jobs to show (default: 20).")
    @argument("--phase", default=None, help="Only jobs in this phase (e.g. Succeeded).")
    @filter_args
    @line_magic
    def train_jobs(self, line: str) -> None:
        """List recent training jobs, newest first (or filtered and sorted)."""
        args = parse_argstring(self.train_jobs, line)
        if args.phase is not None and args.phase not in PHASES:
            raise UsageError(
                f"--phase: {args.phase!r} is not a phase; use one of {', '.join(PHASES)}"
            )
        try:
            records = self.client.find(
                limit=args.limit, phase=args.phase, **filter_values(args, _unquote)
            )
        except WhereError as err:
            raise UsageError(str(err)) from None
        if widgets_available():
            from IPython.display import display

            table = {"text/html": html_job_table(records), "text/plain": format_job_table(records)}
            display(table, raw=True)
        else:
            print(format_job_table(records))
        sweeps = self.client.store.list_sweeps(limit=args.limit)
        if sweeps:
            from .views.sweep import format_sweep_list

            print(f"\n{format_sweep_list(sweeps)}")

    @magic_arguments()
    @argument(
        "runs",
        nargs="*",
        help="Job ids, id prefixes or names (a name: its newest job); a sweep: all its trials.",
    )
    @argument("--last", type=int, default=None, metavar="N", help="Also the N newest jobs.")
    @argument(
        "--objective",
        default=None,
        metavar="METRIC:min|max",
        help="Metric that ranks the runs (default: the first reported, min).",
    )
    @line_magic
    def train_compare(self, line: str) -> None:
        """Compare runs: params side by side (differences highlighted), final metrics, the
        best run for --objective, and every metric's curves overlaid."""
        args = parse_argstring(self.train_compare, line)
        try:
            comparison = compare(
                self.client.store, args.runs, last=args.last, objective=args.objective
            )
        except (JobNotFound, ValueError) as err:
            raise UsageError(str(err)) from None
        from IPython.display import display

        if widgets_available():
            display(CompareWidget(comparison))
        else:
            display({"text/plain": compare_text(comparison)}, raw=True)

    @magic_arguments()
    @job_id_arg
    @output_args
    @line_magic
    def train_attach(self, line: str) -> None:
        """Re-open the live view of a job (also after a kernel restart).

        With ``-o`` (or the job's own ``--out``) its results come back when it succeeds.
        """
        args = parse_argstring(self.train_attach, line)
        try:
            record = self.client.get(args.job_id)
        except JobNotFound:
            sweep = self._sweep_or_none(args.job_id)
            if sweep is None:
                raise UsageError(
                    f"{args.job_id!r} is neither a job nor a sweep; %train_jobs lists both"
                ) from None
            self._watch_sweep(sweep, args.progress)
            return
        self._wait(record, args.progress, _names(args.out) or None)

    def _sweep_or_none(self, ref: str) -> Any:
        from .sweeps.launch import find_sweep

        return find_sweep(self.client, ref)

    def _watch_sweep(self, sweep: Any, progress: str) -> None:
        """Re-open a sweep's view from the store until it ends (or its driver is gone:
        a kernel that died mid-sweep; ``--resume`` continues it)."""
        from .sweeps.launch import driver_alive
        from .sweeps.state import state_from_store
        from .views.sweep import make_sweep_view

        view = make_sweep_view(progress)
        try:
            while True:
                sweep = self.client.store.get_sweep(sweep.id)
                if "metric" not in sweep.spec:
                    print(f"[{sweep.name}] {sweep.phase}: {sweep.message}")
                    return
                state = state_from_store(self.client.store, sweep)
                alive = driver_alive(sweep)
                if not sweep.is_terminal and not alive:
                    state.phase = "Stopped"
                    state.message = (
                        "its kernel stopped driving it; continue with "
                        f"%train_sweep --resume {sweep.id}"
                    )
                view.refresh(state)
                if sweep.is_terminal or not alive:
                    return
                if view.stop_requested:
                    self._cancel_sweep(sweep.id)
                time.sleep(0.5)
        except KeyboardInterrupt:  # stop watching; the sweep goes on where it runs
            return
        finally:
            view.close()

    def _cancel_sweep(self, ref: str) -> Any:
        from .sweeps.launch import cancel_sweep

        return cancel_sweep(self.client, ref)

    @magic_arguments()
    @argument(
        "-f",
        "--framework",
        default="pytorch",
        help="The framework whose workers to keep warm (default: pytorch).",
    )
    @argument("modules", nargs="*", help="Installed modules to import too (e.g. numpy pandas).")
    @line_magic
    def train_warmup(self, line: str) -> None:
        """Make the next local jobs' workers start warm: import the framework now, in the
        background process they are forked from."""
        args = parse_argstring(self.train_warmup, line)
        try:
            framework = frameworks.get(args.framework)
        except frameworks.UnknownFramework as err:
            raise UsageError(f"--framework: {err}") from None
        backend = self.client.backend("local")
        try:
            ready = backend.warm_up(framework.name, args.modules)
        except (SubmitError, TimeoutError) as err:
            raise UsageError(str(err)) from None
        imported = ", ".join(ready.get("imported", [])) or "nothing beyond the runtime"
        idle = self.client.settings.warm_idle_timeout
        print(
            f"{framework.title} workers start warm: {imported} imported in "
            f"{ready.get('seconds', 0):.1f} s (warm process {ready.get('pid')}); it exits "
            f"after {idle:g} s without a job"
        )
        for name, reason in ready.get("skipped", {}).items():
            print(f"  not kept warm: {name} ({reason})")

    @magic_arguments()
    @job_id_arg
    @argument("-r", "--rank", type=int, default=None, help="Only this rank's output.")
    @argument("--follow", action="store_true", help="Keep printing until the job ends.")
    @line_magic
    def train_logs(self, line: str) -> None:
        """Print a job's output, every line prefixed by its rank."""
        args = parse_argstring(self.train_logs, line)
        record = self._get(args.job_id)
        view = TextJobView(record, max_lines_per_second=UNLIMITED)
        try:
            for event in self.client.logs(record.id, rank=args.rank, follow=args.follow):
                view.handle(event)
        except KeyboardInterrupt:
            return

    @magic_arguments()
    @job_id_arg
    @line_magic
    def train_cancel(self, line: str) -> None:
        """Cancel a job: every worker is stopped."""
        args = parse_argstring(self.train_cancel, line)
        try:
            record = self.client.get(args.job_id)
        except JobNotFound:
            if self._sweep_or_none(args.job_id) is None:
                raise UsageError(
                    f"{args.job_id!r} is neither a job nor a sweep; %train_jobs lists both"
                ) from None
            sweep = self._cancel_sweep(args.job_id)
            print(f"[{sweep.name}] {sweep.phase}: every running trial was stopped")
            return
        final = self.client.cancel(record.id)
        print(f"[{final.name}] {final.phase}")

    def _get(self, job_id: str) -> JobRecord:
        try:
            return self.client.get(job_id)
        except JobNotFound as err:
            raise UsageError(str(err)) from None


#: ``%train_resume`` flags (argparse dests) -> the JobSpec fields they set.
_SPEC_FIELDS_OF = {
    "workers": ("workers", "min_workers"),
    "tag": ("tags",),
    "volume": ("volumes",),
    "env": ("env",),
    "secret_env": ("secret_env",),
    **{
        name: (name,)
        for name in (
            "framework",
            "gpus",
            "nproc_per_worker",
            "backend",
            "name",
            "max_restarts",
            "timeout",
            "experiment",
            "files",
            "cpu",
            "memory",
            "image",
            "namespace",
            "context",
            "api",
            "runtime",
            "node_selector",
            "pip",
            "queue",
            "checkpoint",
            "out",
        )
    },
}


def _given_flags(magic: Callable[..., Any], line: str) -> set[str]:
    """The argparse dests of the spec flags written on ``line`` (defaults are not changes)."""
    import shlex

    parser = magic.parser  # type: ignore[attr-defined]
    try:
        tokens = shlex.split(line)
    except ValueError:
        tokens = line.split()
    given = set()
    for action in parser._actions:
        for option in action.option_strings:
            if any(t == option or t.startswith(option + "=") for t in tokens):
                given.add(action.dest)
    return given & set(_SPEC_FIELDS_OF)


def _notebook_path(shell: Any) -> str | None:
    """The notebook this kernel serves, where the frontend tells us."""
    return os.environ.get("JPY_SESSION_NAME") or shell.user_ns.get("__vsc_ipynb_file__")


def _unquote(value: str | None) -> str | None:
    """``'params.lr>0.1'`` -> ``params.lr>0.1`` (IPython keeps a line magic's quotes)."""
    if value is not None and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _names(values: list[str]) -> list[str]:
    """``-o a,b -o c`` -> ["a", "b", "c"]."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]
