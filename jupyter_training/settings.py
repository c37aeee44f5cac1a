"""Traitlets settings shared by the magic, the CLI and the server extension.

Users write ``c.TrainingApp.backend = "kubernetes"`` in a Jupyter config file
(or an IPython profile); the same names become the magic's defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

from jupyter_core.paths import jupyter_config_path, jupyter_data_dir
from traitlets import Bool, Enum, Float, Int, List, Unicode, default
from traitlets.config import Config, Configurable
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

from . import frameworks
from .backends import backend_names
from .capture import DEFAULT_MAX_PAYLOAD_BYTES

#: Config files, besides IPython's own, that may hold ``c.TrainingApp`` settings.
CONFIG_FILES = ("jupyter_training_config", "jupyter_server_config")


def _framework_traits() -> dict[str, Unicode]:
    traits = {}
    for framework in frameworks.all_frameworks():
        traits[f"{framework.name}_image"] = Unicode(
            framework.default_image,
            config=True,
            help=f"Default container image for {framework.name} workers on Kubernetes.",
        )
        runtime_help = f"TrainJob (v2) runtime for {framework.name} jobs."
        if framework.v2_runtime is None:
            runtime_help += " Unused: Trainer v2 has none, so these jobs run with --api v1."
        traits[f"{framework.name}_runtime"] = Unicode(
            framework.v2_runtime or "", config=True, help=runtime_help
        )
    return traits


class TrainingSettings(Configurable):
    """Settings of jupyter-training; configure them as ``c.TrainingApp.<name>``."""

    backend = Enum(
        list(backend_names()), "local", config=True, help="Default backend for new jobs."
    )
    store_dir = Unicode(
        config=True,
        help="Directory holding the job store (jobs.db) and local jobs' files.",
    )
    max_payload_bytes = Int(
        DEFAULT_MAX_PAYLOAD_BYTES,
        config=True,
        help="Largest total size of the notebook values a cell may ship to its workers.",
    )
    max_workers = Int(64, config=True, help="Most workers one job may ask for.")
    max_gpus_per_worker = Int(8, config=True, help="Most GPUs one worker may ask for.")
    allowed_namespaces = List(
        Unicode(),
        config=True,
        help="Namespaces jobs may run in (empty: any). Enforced for the magic, REST and sidebar.",
    )
    allowed_images = List(
        Unicode(),
        config=True,
        help="Image prefixes jobs may use, e.g. 'registry.example.com/' (empty: any).",
    )
    max_result_bytes = Int(
        64 * 1024 * 1024,
        config=True,
        help="Largest pickled --out result that travels back through a job's output.",
    )
    stop_grace_seconds = Float(
        5.0,
        config=True,
        help="Seconds workers get after SIGTERM before SIGKILL when a job stops.",
    )
    warm_workers = Bool(
        True,
        config=True,
        help="Fork local jobs' workers from a warm process that has the framework (and the "
        "installed modules recent cells imported) loaded already; every job still gets new "
        "processes. False: start every worker as a new interpreter.",
    )
    warm_idle_timeout = Float(
        600.0,
        config=True,
        help="Seconds a warm process waits for the next job before it exits.",
    )

    # Kubernetes backend
    namespace = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Namespace for Kubernetes jobs (default: the kubeconfig context's namespace, "
        "or the notebook pod's own namespace in a cluster, else 'default').",
    )
    kubeconfig = Unicode(
        None,
        allow_none=True,
        config=True,
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config).",
    )
    context = Unicode(None, allow_none=True, config=True, help="kubeconfig context to use.")
    api = Enum(
        ["auto", "v1", "v2"],
        "auto",
        config=True,
        help="Kubeflow API: v1 (PyTorchJob/XGBoostJob/JAXJob/TFJob), v2 (TrainJob) or auto "
        "(what the cluster has; v2 when it has both).",
    )
    # One ``<framework>_image`` and ``<framework>_runtime`` setting per framework module
    # (c.TrainingApp.pytorch_image, c.TrainingApp.jax_runtime, ...), defaults from it.
    locals().update(_framework_traits())

    gpu_resource_name = Unicode(
        "nvidia.com/gpu",
        config=True,
        help="Extended resource that --gpus requests (amd.com/gpu, ...).",
    )
    ttl_seconds_after_finished = Int(
        86400,
        config=True,
        help="Seconds a finished v1 job (and its pods' logs) stay in the cluster.",
    )
    clean_pod_policy = Enum(
        ["All", "Running", "None"],
        "Running",
        config=True,
        help="Which pods a finished v1 job deletes "
        "(Running: stragglers only, so the others' logs stay).",
    )
    configmap_max_bytes = Int(
        1_000_000,
        config=True,
        help="Largest payload shipped in a ConfigMap (the API server caps objects near 1 MiB).",
    )
    request_timeout = Float(
        30.0, config=True, help="Seconds to wait for a Kubernetes API response (watches excepted)."
    )

    mlflow_tracking_uri = Unicode(
        "",
        config=True,
        help="Also log every job as an MLflow run at this tracking URI (default: the "
        "MLFLOW_TRACKING_URI environment variable; empty and unset: no MLflow).",
    )

    @property
    def mlflow_uri(self) -> str | None:
        """Where jobs are logged as MLflow runs: the setting, else MLFLOW_TRACKING_URI."""
        return self.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None

    def image_for(self, framework: str) -> str:
        """The default image of ``framework``'s workers (``c.TrainingApp.<name>_image``)."""
        return getattr(self, f"{frameworks.get(framework).name}_image")

    def runtime_for(self, framework: str) -> str:
        """The TrainJob runtime of ``framework`` (``c.TrainingApp.<name>_runtime``)."""
        return getattr(self, f"{frameworks.get(framework).name}_runtime")

    @default("store_dir")
    def _default_store_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "training")

    @property
    def store_path(self) -> Path:
        return Path(self.store_dir) / "jobs.db"


def load_settings(extra: Config | None = None) -> TrainingSettings:
    """Settings from Jupyter config files, overlaid with ``extra`` (an IPython config).

    Sections named ``TrainingApp`` and ``TrainingSettings`` both apply.
    """
    merged = Config()
    for directory in reversed(jupyter_config_path()):
        for base in CONFIG_FILES:
            for loader in (JSONFileConfigLoader, PyFileConfigLoader):
                suffix = ".json" if loader is JSONFileConfigLoader else ".py"
                path = Path(directory) / f"{base}{suffix}"
                if path.is_file():
                    try:
                        merged.merge(loader(path.name, str(path.parent)).load_config())
                    except Exception:  # a broken unrelated config must not stop the magic
                        continue
    if extra is not None:
        merged.merge(extra)
    section = Config()
    for name in ("TrainingSettings", "TrainingApp"):
        if name in merged:
            section.merge(merged[name])
    return TrainingSettings(config=Config({"TrainingSettings": section}))
