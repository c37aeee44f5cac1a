"""Real JAX and TensorFlow collectives across worker processes, through the magic."""

from __future__ import annotations

import json

import pytest
from IPython.utils.capture import capture_output

from jupyter_training.client import TrainingClient


def run(ip, source):
    result = ip.run_cell(source, store_history=True)
    result.raise_error()
    return result


def test_jax_processes_form_one_job_and_all_gather(ip, tmp_path):
    pytest.importorskip("jax")
    run(ip, f"out = {str(tmp_path)!r}\n")
    run(
        ip,
        "%%train_distributed --framework jax --workers 2\n"
        "import json\n"
        "import jax, jax.numpy as jnp\n"
        "from jax.experimental import multihost_utils\n"
        "jax.distributed.initialize()  # written for a JAXJob: a no-op here\n"
        "mine = jnp.array([jax.process_index() + 1.0])\n"
        "gathered = multihost_utils.process_allgather(mine)\n"
        "with open(f'{out}/jax-{jax.process_index()}.json', 'w') as f:\n"
        "    json.dump({'count': jax.process_count(), 'gathered': gathered.ravel().tolist(),\n"
        "               'sum': float(gathered.sum())}, f)\n",
    )
    results = [json.loads((tmp_path / f"jax-{r}.json").read_text()) for r in (0, 1)]
    for result in results:
        assert result["count"] == 2
        assert result["gathered"] == [1.0, 2.0]
        assert result["sum"] == 3.0


def test_jax_failure_is_named_by_rank(ip):
    pytest.importorskip("jax")
    with capture_output(), pytest.raises(Exception) as caught:
        run(
            ip,
            "%%train_distributed --framework jax --workers 2\n"
            "import jax\n"
            "if jax.process_index() == 1:\n"
            "    raise ValueError('bad shard on process 1')\n",
        )
    assert "rank 1" in str(caught.value)
    assert "bad shard on process 1" in str(caught.value)


#: Each worker adds task index + 1 through MultiWorkerMirroredStrategy: 3.0 on 2 workers.
TF_ALL_REDUCE = (
    "import json, os\n"
    "import tensorflow as tf\n"
    "strategy = tf.distribute.MultiWorkerMirroredStrategy()\n"
    "task = json.loads(os.environ['TF_CONFIG'])['task']['index']\n"
    "def step():\n"
    "    ctx = tf.distribute.get_replica_context()\n"
    "    return ctx.all_reduce('sum', tf.constant(float(task + 1)))\n"
    "total = strategy.experimental_local_results(strategy.run(step))[0]\n"
)


def test_tensorflow_multiworker_all_reduce(ip, tmp_path):
    pytest.importorskip("tensorflow")
    run(ip, f"out = {str(tmp_path)!r}\n")
    run(
        ip,
        "%%train_distributed --framework tensorflow --workers 2\n"
        + TF_ALL_REDUCE
        + "with open(f'{out}/tf-{task}.json', 'w') as f:\n"
        "    json.dump({'replicas': strategy.num_replicas_in_sync, 'total': float(total)}, f)\n",
    )
    results = [json.loads((tmp_path / f"tf-{r}.json").read_text()) for r in (0, 1)]
    assert results == [{"replicas": 2, "total": 3.0}] * 2


def test_tensorflow_failure_is_named_by_rank(ip):
    with capture_output(), pytest.raises(Exception) as caught:
        run(
            ip,
            "%%train_distributed --framework tf --workers 2\n"
            "import jupyter_training as jt\n"
            "if jt.rank() == 0:\n"
            "    raise RuntimeError('chief could not read its data')\n",
        )
    assert "rank 0" in str(caught.value)
    assert "chief could not read its data" in str(caught.value)
    record = TrainingClient().list(limit=1)[0]
    assert record.framework == "tensorflow"  # the alias is recorded by its name
