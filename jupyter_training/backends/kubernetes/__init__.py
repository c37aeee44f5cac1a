"""Kubernetes backend: Kubeflow PyTorchJob / XGBoostJob (v1) and TrainJob (v2).

This package is the only place that imports the official ``kubernetes``
client: ``targets``, ``manifests`` and ``pods`` are pure functions over plain
dicts; ``cluster`` holds the connection, ``watch`` the live event stream and
``backend`` the :class:`~.backend.KubernetesBackend` itself.
"""
