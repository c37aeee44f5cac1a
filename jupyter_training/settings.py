"""Traitlets settings shared by the magic, the CLI and the server extension.

Users write ``c.TrainingApp.backend = "kubernetes"`` in a Jupyter config file
(or an IPython profile); the same names become the magic's defaults.
"""

from __future__ import annotations

from pathlib import Path

from jupyter_core.paths import jupyter_config_path, jupyter_data_dir
from traitlets import Enum, Float, Int, Unicode, default
from traitlets.config import Config, Configurable
from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

from .capture import DEFAULT_MAX_PAYLOAD_BYTES
from .spec import BACKENDS

#: Config files, besides IPython's own, that may hold ``c.TrainingApp`` settings.
CONFIG_FILES = ("jupyter_training_config", "jupyter_server_config")


class TrainingSettings(Configurable):
    """Settings of jupyter-training; configure them as ``c.TrainingApp.<name>``."""

    backend = Enum(list(BACKENDS), "local", config=True, help="Default backend for new jobs.")
    data_dir = Unicode(
        config=True,
        help="Directory holding the job store (jobs.db) and local jobs' files.",
    )
    max_payload_bytes = Int(
        DEFAULT_MAX_PAYLOAD_BYTES,
        config=True,
        help="Largest total size of the notebook values a cell may ship to its workers.",
    )
    stop_grace_seconds = Float(
        5.0,
        config=True,
        help="Seconds workers get after SIGTERM before SIGKILL when a job stops.",
    )

    @default("data_dir")
    def _default_data_dir(self) -> str:
        return str(Path(jupyter_data_dir()) / "training")

    @property
    def store_path(self) -> Path:
        return Path(self.data_dir) / "jobs.db"


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
