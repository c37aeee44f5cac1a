import pytest

from jupyter_training.spec import JobSpec, SpecError, check_job_name, parse_env_assignments


def test_defaults_are_valid():
    spec = JobSpec()
    assert (spec.framework, spec.workers, spec.gpus, spec.backend) == ("pytorch", 2, 0, "local")


@pytest.mark.parametrize(
    ("changes", "flag", "hint"),
    [
        ({"workers": 0}, "--workers", ">= 1"),
        ({"workers": "3"}, "--workers", "whole number"),
        ({"workers": True}, "--workers", "whole number"),
        ({"gpus": -1}, "--gpus", ">= 0"),
        ({"framework": "mxnet"}, "--framework", "jax, pytorch, tensorflow, xgboost"),
        ({"backend": "slurm"}, "--backend", "local, kubernetes"),
        ({"max_restarts": -2}, "--max-restarts", ">= 0"),
        ({"timeout": 0}, "--timeout", "positive"),
        ({"timeout": float("nan")}, "--timeout", "positive"),
        ({"timeout": "soon"}, "--timeout", "number of seconds"),
        ({"name": "My_Job"}, "--name", "DNS-1123"),
        ({"name": "-job"}, "--name", "DNS-1123"),
        ({"name": "a" * 64}, "--name", "at most 63"),
        ({"name": ""}, "--name", "non-empty"),
        ({"env": {"1BAD": "x"}}, "--env", "valid variable name"),
        ({"env": {"RANK": "3"}}, "--env", "set by the training runtime"),
        ({"env": {"OK": 3}}, "--env", "must be a string"),
        ({"cpu": "two", "backend": "kubernetes"}, "--cpu", "Kubernetes quantity"),
        ({"memory": "4GB", "backend": "kubernetes"}, "--memory", "Kubernetes quantity"),
        ({"image": "torch:2 ; rm -rf /", "backend": "kubernetes"}, "--image", "image reference"),
        ({"namespace": "Team_A", "backend": "kubernetes"}, "--namespace", "Kubernetes name"),
        ({"queue": "Q", "backend": "kubernetes"}, "--queue", "Kubernetes name"),
        ({"runtime": "-x", "backend": "kubernetes"}, "--runtime", "Kubernetes name"),
        ({"api": "v3", "backend": "kubernetes"}, "--api", "auto, v1, v2"),
        ({"pip": ["--index-url=http://evil"], "backend": "kubernetes"}, "--pip", "options"),
        ({"pip": "numpy", "backend": "kubernetes"}, "--pip", "list of strings"),
        ({"volumes": ["data"], "backend": "kubernetes"}, "--volume", "CLAIM:/absolute/path"),
        ({"volumes": ["data:rel/path"], "backend": "kubernetes"}, "--volume", "CLAIM:/absolute"),
        (
            {"node_selector": {"bad key!": "x"}, "backend": "kubernetes"},
            "--node-selector",
            "label key",
        ),
        (
            {"node_selector": {"disk": "s s"}, "backend": "kubernetes"},
            "--node-selector",
            "label value",
        ),
        ({"image": "pytorch/pytorch"}, "--image", "only applies to --backend kubernetes"),
        ({"node_selector": {"a": "b"}}, "--node-selector", "only applies to --backend kubernetes"),
        ({"cpu": "2"}, "--cpu", "only applies to --backend kubernetes"),
    ],
)
def test_each_bad_value_names_its_flag(changes, flag, hint):
    with pytest.raises(SpecError) as caught:
        JobSpec(**changes)
    assert caught.value.field == flag
    assert str(caught.value).startswith(flag)
    assert hint in str(caught.value)


@pytest.mark.parametrize("quantity", ["2", "500m", "0.5", "4Gi", "512Mi", "1e3"])
def test_kubernetes_quantities_accepted(quantity):
    assert JobSpec(backend="kubernetes", cpu=quantity, memory=quantity).kubernetes.cpu == quantity


def test_round_trip_through_dict():
    spec = JobSpec(framework="xgboost", workers=4, name="xgb-1", env={"SEED": "1"}, timeout=60)
    assert JobSpec.from_dict(spec.to_dict()) == spec
    cluster = JobSpec(
        backend="kubernetes",
        image="python:3.11",
        namespace="team-a",
        node_selector={"nvidia.com/gpu.product": "H100"},
        pip=["scikit-learn==1.5"],
        volumes=["work:/mnt/work"],
        files=["utils.py"],
        queue="gpu-queue",
        api="v1",
    )
    assert JobSpec.from_dict(cluster.to_dict()) == cluster


def test_from_dict_refuses_unknown_keys_by_name():
    with pytest.raises(SpecError) as caught:
        JobSpec.from_dict({"workers": 2, "wrokers": 3})
    assert caught.value.field == "wrokers"
    assert "known settings" in str(caught.value)


def test_env_assignments():
    assert parse_env_assignments(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(SpecError, match="--env: 'NOEQUALS' is not KEY=VALUE"):
        parse_env_assignments(["NOEQUALS"])


def test_job_name_accepts_dns_labels():
    assert check_job_name("mnist-ddp-2") == "mnist-ddp-2"


def test_queue_fits_a_label_and_timeout_fits_the_api():
    with pytest.raises(SpecError, match="--queue"):
        JobSpec(backend="kubernetes", queue="q" * 64)
    with pytest.raises(SpecError, match="--timeout: 1e\\+20 s is too long"):
        JobSpec(timeout=1e20)


def test_kubernetes_settings_live_in_their_own_object():
    from jupyter_training.spec import KubernetesOptions

    flat = JobSpec(backend="kubernetes", image="example.com/x:1", namespace="team-a")
    nested = JobSpec(
        backend="kubernetes",
        kubernetes=KubernetesOptions(image="example.com/x:1", namespace="team-a"),
    )
    assert flat == nested
    assert flat.kubernetes.image == "example.com/x:1"
    assert not hasattr(flat, "image")  # one place to read them
    # JSON stays flat (REST and the history), and nested input is accepted too.
    assert flat.to_dict()["namespace"] == "team-a" and "kubernetes" not in flat.to_dict()
    assert JobSpec.from_dict(flat.to_dict()) == flat
    assert JobSpec.from_dict({"backend": "kubernetes", "kubernetes": {"namespace": "team-a"}})
    assert flat.replace(api="v1").kubernetes == flat.kubernetes.replace(api="v1")
    with pytest.raises(SpecError, match="unknown Kubernetes setting"):
        JobSpec.from_dict({"backend": "kubernetes", "kubernetes": {"imag": "x"}})
    with pytest.raises(SpecError, match="--namespace: 'Bad' is not a valid Kubernetes name"):
        KubernetesOptions(namespace="Bad")
