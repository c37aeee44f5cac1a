"""``TrainingApp``: the server extension, its settings and its services."""

from __future__ import annotations

from typing import Any

from jupyter_server.extension.application import ExtensionApp

from .. import __version__
from ..client import TrainingClient
from ..settings import TrainingSettings
from .handlers import HANDLERS
from .monitor import JobMonitor


class TrainingApp(ExtensionApp, TrainingSettings):
    """jupyter-training in the Jupyter server: ``c.TrainingApp.<setting>`` configures it.

    The settings are the magic's defaults too (see :class:`TrainingSettings`).
    """

    name = "jupyter_training"
    extension_url = "/jupyter-training"
    load_other_extensions = True
    handlers: list[tuple[str, Any]] = [
        (rf"/jupyter-training/api/{pattern}", handler) for pattern, handler in HANDLERS
    ]

    def initialize_settings(self) -> None:
        client = TrainingClient(self)
        monitor = JobMonitor(client)
        self.settings.update(
            jupyter_training_client=client,
            jupyter_training_monitor=monitor,
            jupyter_training_version=__version__,
        )
        monitor.start()
        self.log.info("jupyter-training %s: job store %s", __version__, client.store.path)

    async def stop_extension(self) -> None:
        monitor = self.settings.get("jupyter_training_monitor")
        if monitor is not None:
            monitor.stop()
