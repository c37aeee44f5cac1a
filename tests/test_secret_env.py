"""``--secret-env``: values reach the workers and nothing else (store, logs, ConfigMaps, events).

Local jobs take the value from the kernel's environment; Kubernetes jobs get it through a
Secret (ours, owned by the job, or one the user names) and ``secretKeyRef``. Workers print
it as ``***``. Every test checks for the value itself in every place it must not be.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from pathlib import Path

import pytest
import yaml
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from jupyter_training.backends.base import SubmitError
from jupyter_training.client import TrainingClient
from jupyter_training.errors import JobFailedError
from jupyter_training.events import CANCELLED, FAILED
from jupyter_training.magics import TrainingMagics
from jupyter_training.runtime import masking
from jupyter_training.spec import (
    MIN_SECRET_LENGTH,
    JobSpec,
    SpecError,
    parse_secret_env,
    secret_values,
)

from conftest import wait_until
from k8s.fixtures import *  # noqa: F403 - pytest fixtures: kube, kubeconfig, operator, ...
from k8s.kubelet import run_pods_like_a_kubelet
from kubeflow_schemas import validate_manifest

NS = "default"
NAME = "JT_TEST_TOKEN"

#: The cell: proves the worker has the value (by its hash), then prints it every way it can.
CELL = """\
import hashlib, os, sys, time
import jupyter_training as jt
value = os.environ["JT_TEST_TOKEN"]
print("sha256", hashlib.sha256(value.encode()).hexdigest())
print("plain", value)
sys.stdout.write("split " + value[:3])
sys.stdout.write(value[3:] + " end\\n")
print("stderr", value, file=sys.stderr)
if jt.rank() == 1:
    time.sleep(0.5)  # rank 0 finishes first, so its output is complete
    raise RuntimeError("token rejected: " + value)
"""


@pytest.fixture
def token(monkeypatch) -> str:
    """A fresh secret in the kernel's environment."""
    value = "tok-" + secrets.token_hex(16)
    monkeypatch.setenv(NAME, value)
    return value


def assert_nowhere_on_disk(root: Path, value: str) -> int:
    """No file under ``root`` holds ``value`` (raw or base64); returns how many were read."""
    needles = [value.encode(), base64.b64encode(value.encode())]
    checked = 0
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            checked += 1
            for needle in needles:
                assert needle not in data, f"secret found in {path}"
    return checked


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- flags and spec --------------------------------------------------------------------------


def test_flag_forms_parse_to_sources():
    parsed = parse_secret_env(["HF_TOKEN", "DB=db-creds/password", "API_KEY=api-keys"])
    assert parsed == {"HF_TOKEN": "", "DB": "db-creds/password", "API_KEY": "api-keys/API_KEY"}
    spec = JobSpec(backend="kubernetes", secret_env=parsed)
    assert spec.secrets_from_environment == ["HF_TOKEN"]
    assert JobSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"secret_env": {"1BAD": ""}}, "'1BAD' is not a valid variable name"),
        ({"secret_env": {"RANK": ""}}, "RANK is set by the training runtime"),
        ({"secret_env": {"TOKEN": ""}, "env": {"TOKEN": "x"}}, "TOKEN is also set with --env"),
        (
            {"secret_env": {"TOKEN": "Bad_Secret/key"}, "backend": "kubernetes"},
            "expected SECRET/KEY",
        ),
        ({"secret_env": {"TOKEN": "creds/token"}}, "reads a Kubernetes Secret, which needs"),
        ({"secret_env": ["TOKEN"]}, "must be a mapping"),
    ],
)
def test_bad_secret_env_names_the_flag(kwargs, expected):
    with pytest.raises(SpecError, match=expected) as caught:
        JobSpec(**kwargs)
    assert caught.value.field == "--secret-env"


def test_values_come_from_the_environment_and_must_be_maskable():
    spec = JobSpec(secret_env={"A_TOKEN": ""})
    assert secret_values(spec, {"A_TOKEN": "long-enough"}) == {"A_TOKEN": "long-enough"}
    with pytest.raises(SpecError, match="A_TOKEN is not set in the kernel's environment"):
        secret_values(spec, {})
    with pytest.raises(SpecError, match="A_TOKEN is empty"):
        secret_values(spec, {"A_TOKEN": ""})
    with pytest.raises(SpecError, match="only 3 characters"):
        secret_values(spec, {"A_TOKEN": "abc"})
    assert masking.MIN_LENGTH == MIN_SECRET_LENGTH  # what is accepted is what is masked


def test_masking_stream_masks_whole_lines_and_flushes():
    class Sink:
        def __init__(self):
            self.parts: list[str] = []

        def write(self, text):
            self.parts.append(text)

        def flush(self):
            pass

    sink = Sink()
    stream = masking.MaskingStream(sink, ["s3cr3t-long", "s3cr3t"])
    stream.write("a s3c")
    assert sink.parts == []  # a partial line waits
    stream.write("r3t-long b\nc s3cr3t")
    stream.flush()
    assert "".join(sink.parts) == "a *** b\nc ***"


# -- local backend ---------------------------------------------------------------------------


def test_local_job_gets_the_value_and_nothing_keeps_it(settings, token):
    client = TrainingClient(settings)
    spec = JobSpec(workers=2, secret_env={NAME: ""})
    record = client.submit(spec, CELL, {})
    events = list(client.events(record.id))
    final = client.get(record.id)
    assert final.phase == FAILED
    lines = {
        rank: [e.data["line"] for e in events if e.kind == "log" and e.rank == rank]
        for rank in (0, 1)
    }
    for rank in (0, 1):
        assert f"sha256 {sha(token)}" in lines[rank]  # the worker had the real value
        assert "plain ***" in lines[rank]
        assert "split *** end" in lines[rank]  # written in two pieces, masked as one line
        assert "stderr ***" in lines[rank]
    assert final.failure["message"] == "token rejected: ***"
    assert "token rejected: ***" in final.failure["reason"]
    assert "***" in final.failure["traceback"]
    assert token not in json.dumps([e.data for e in events])
    assert token not in json.dumps(final.failure)
    assert final.spec.secret_env == {NAME: ""}  # the name is kept, the value is not
    assert assert_nowhere_on_disk(Path(settings.store_dir), token) >= 5  # db, feed, logs, payload


def test_magic_refuses_a_missing_secret_and_keeps_the_cell(ip, monkeypatch):
    monkeypatch.delenv("JT_MISSING_TOKEN", raising=False)
    with pytest.raises(UsageError, match="--secret-env: JT_MISSING_TOKEN is not set"):
        ip.run_cell_magic(
            "train_distributed", "-w 1 --name keep-spec --secret-env JT_MISSING_TOKEN", "pass"
        )
    (record,) = ip.magics_manager.registry["TrainingMagics"].client.list()
    assert (record.phase, record.name, record.cell) == (FAILED, "keep-spec", "pass")
    assert record.spec.secret_env == {"JT_MISSING_TOKEN": ""}


def test_magic_runs_with_a_secret_and_dry_run_hides_it(ip, token):
    magics: TrainingMagics = ip.magics_manager.registry["TrainingMagics"]
    with capture_output() as dry:
        ip.run_cell_magic("train_distributed", f"-w 1 --dry-run --secret-env {NAME}", "pass")
    assert f"{NAME}=<secret, from the kernel's environment>" in dry.stdout
    assert token not in dry.stdout
    with capture_output() as captured, pytest.raises(JobFailedError) as caught:
        ip.run_cell_magic("train_distributed", f"-w 2 --secret-env {NAME}", CELL)
    assert "[rank 0] plain ***" in captured.stdout
    assert token not in captured.stdout + captured.stderr + str(caught.value)
    assert "token rejected: ***" in str(caught.value)
    assert magics.client.list()[0].spec.secret_env == {NAME: ""}


# -- Kubernetes ------------------------------------------------------------------------------


@pytest.fixture
def client(settings, kubeconfig):
    return TrainingClient(settings)


def k8s_spec(**changes) -> JobSpec:
    return JobSpec(
        backend="kubernetes",
        **{"api": "v1", "workers": 2, "secret_env": {NAME: "", "DB_PASSWORD": "db-creds/pw"}}
        | changes,
    )


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_kubernetes_secret_is_owned_and_referenced_never_inlined(client, kube, token, api):
    record = client.submit(k8s_spec(api=api, name="sec"), "print(1)", {})
    kind = "pytorchjobs" if api == "v1" else "trainjobs"
    job = kube.get(kind, NS, "sec")
    secret = kube.get("secrets", NS, "sec-secret-env")
    assert base64.b64decode(secret["data"][NAME]).decode() == token
    assert set(secret["data"]) == {NAME}  # the user's own Secret is referenced, not copied
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        job["kind"],
        "sec",
        job["metadata"]["uid"],
    )
    assert (
        validate_manifest(
            {k: v for k, v in secret.items() if k in ("apiVersion", "kind", "type", "data")}
            | {"metadata": {"name": "sec-secret-env", "namespace": NS}}
        )
        == []
    )
    env = (
        job["spec"]["trainer"]["env"]
        if api == "v2"
        else job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0][
            "env"
        ]
    )
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs == {
        NAME: {"name": "sec-secret-env", "key": NAME},
        "DB_PASSWORD": {"name": "db-creds", "key": "pw"},
    }
    plain = {e["name"]: e["value"] for e in env if "value" in e}
    assert plain["JUPYTER_TRAINING_SECRET_ENV"] == f"{NAME},DB_PASSWORD"
    configmap = kube.get("configmaps", NS, "sec-payload")
    for blob in (json.dumps(job), json.dumps(configmap), json.dumps(record.spec.to_dict())):
        assert token not in blob and base64.b64encode(token.encode()).decode() not in blob
    client.cancel(record.id)
    assert kube.get("secrets", NS, "sec-secret-env") is None
    assert client.get(record.id).phase == CANCELLED


def test_failed_job_create_rolls_back_the_secret(client, kube, token):
    kube.fail("POST", r".*/pytorchjobs$", status=403, message="user cannot create pytorchjobs")
    with pytest.raises(SubmitError, match="403"):
        client.submit(k8s_spec(name="denied"), "print(1)", {})
    assert kube.objects("secrets", NS) == []
    assert kube.objects("configmaps", NS) == []


def test_kubernetes_dry_run_shows_a_placeholder(client, kube, token):
    text = client.dry_run(k8s_spec(name="dry"), "print(1)", {})
    objects = list(yaml.safe_load_all(text))
    assert [o["kind"] for o in objects] == ["ConfigMap", "Secret", "PyTorchJob"]
    assert objects[1]["stringData"] == {NAME: f"<{NAME} from the kernel's environment>"}
    assert token not in text
    assert all(validate_manifest(o) == [] for o in objects)
    assert kube.objects("secrets", NS) == []  # nothing created


def test_pods_read_the_secret_and_mask_it_in_logs(client, kube, operator, token, tmp_path):
    kube.create(
        "secrets",
        {
            "metadata": {"name": "db-creds"},
            "data": {"pw": base64.b64encode(b"db-password-123").decode()},
        },
        NS,
    )
    cell = CELL + "print('db', os.environ['DB_PASSWORD'])\n"

    def kubelet():
        job = operator.wait_for_job("pytorchjobs", NS, timeout=30)
        job.create_pods()
        run_pods_like_a_kubelet(kube, job, tmp_path)

    done = operator.background(kubelet)
    record = client.submit(k8s_spec(name="pods"), cell, {})
    events = list(client.events(record.id))
    done.result(60)
    lines = [e.data["line"] for e in events if e.kind == "log" and e.rank == 0]
    assert f"sha256 {sha(token)}" in lines
    assert "plain ***" in lines and "split *** end" in lines and "db ***" in lines
    final = wait_until(lambda: (r := client.get(record.id)).is_terminal and r)
    assert final.phase == FAILED
    assert token not in json.dumps([e.data for e in events]) + json.dumps(final.failure)
    assert "db-password-123" not in json.dumps([e.data for e in events])
    assert_nowhere_on_disk(Path(client.settings.store_dir), token)
