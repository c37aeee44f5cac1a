"""Real torch.distributed (gloo) and real XGBoost collective through the magic."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
xgb = pytest.importorskip("xgboost")


def run(ip, source):
    result = ip.run_cell(source, store_history=True)
    result.raise_error()
    return result


def test_pytorch_ddp_gradients_agree_across_three_ranks(ip, tmp_path):
    run(
        ip,
        "import torch\n"
        f"out = {str(tmp_path)!r}\n"
        "def make_model():\n"
        "    torch.manual_seed(0)\n"
        "    nn = torch.nn\n"
        "    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))\n"
        "def shard(rank):\n"
        "    g = torch.Generator().manual_seed(100 + rank)\n"
        "    return torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g)\n",
    )
    run(
        ip,
        "%%train_distributed --framework pytorch --workers 3\n"
        "import torch.distributed as dist\n"
        "from torch.nn.parallel import DistributedDataParallel as DDP\n"
        "dist.init_process_group('gloo')\n"
        "model = DDP(make_model())\n"
        "x, y = shard(dist.get_rank())\n"
        "torch.nn.functional.mse_loss(model(x), y).backward()\n"
        "grads = [p.grad for p in model.parameters()]\n"
        "torch.save(grads, f'{out}/grads-{dist.get_rank()}.pt')\n",
    )
    shard, make_model = ip.user_ns["shard"], ip.user_ns["make_model"]
    per_rank = [torch.load(tmp_path / f"grads-{r}.pt") for r in range(3)]
    for other in per_rank[1:]:
        for a, b in zip(per_rank[0], other, strict=True):
            assert torch.equal(a, b)
    expected = []
    for rank in range(3):
        model = make_model()
        x, y = shard(rank)
        torch.nn.functional.mse_loss(model(x), y).backward()
        expected.append([p.grad for p in model.parameters()])
    for got, *local in zip(per_rank[0], *expected, strict=True):
        torch.testing.assert_close(got, sum(local) / 3)


def test_xgboost_two_workers_same_model_as_single_process(ip, tmp_path):
    run(
        ip,
        "import numpy as np\n"
        "import xgboost as xgb\n"
        f"out = {str(tmp_path)!r}\n"
        "params = {'objective': 'binary:logistic', 'max_depth': 3, 'eta': 0.3, 'seed': 0}\n"
        "def dataset():\n"
        "    rng = np.random.default_rng(0)\n"
        "    X = rng.normal(size=(400, 5))\n"
        "    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(float)\n"
        "    return X, y\n",
    )
    run(
        ip,
        "%%train_distributed -f xgboost -w 2\n"
        "import jupyter_training as jt\n"
        "X, y = dataset()\n"
        "rows = slice(jt.rank(), None, jt.world_size())\n"
        "booster = xgb.train(params, xgb.DMatrix(X[rows], y[rows]), num_boost_round=10)\n"
        "booster.save_model(f'{out}/model-{jt.rank()}.json')\n",
    )
    models = [(tmp_path / f"model-{r}.json").read_bytes() for r in (0, 1)]
    assert models[0] == models[1]
    X, y = ip.user_ns["dataset"]()
    single = xgb.train(ip.user_ns["params"], xgb.DMatrix(X, y), num_boost_round=10)
    distributed = xgb.Booster(model_file=str(tmp_path / "model-0.json"))
    assert distributed.num_boosted_rounds() == single.num_boosted_rounds() == 10
    # Measured: identical predictions (the hist sketch of 400 rows is exact either way).
    diff = np.abs(distributed.predict(xgb.DMatrix(X)) - single.predict(xgb.DMatrix(X)))
    assert diff.max() < 1e-6, diff.max()


def test_two_workers_of_two_processes_are_one_world_of_four(ip, tmp_path):
    run(ip, f"out = {str(tmp_path)!r}\n")
    run(
        ip,
        "%%train_distributed --framework pytorch --workers 2 --nproc-per-worker 2\n"
        "import os, json\n"
        "import torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "total = torch.tensor([float(dist.get_rank())])\n"
        "dist.all_reduce(total)\n"
        "names = ('RANK', 'LOCAL_RANK', 'GROUP_RANK', 'LOCAL_WORLD_SIZE', 'WORLD_SIZE')\n"
        "seen = {n: int(os.environ[n]) for n in names}\n"
        "seen['sum'] = total.item()\n"
        "json.dump(seen, open(f'{out}/rank-{dist.get_rank()}.json', 'w'))\n",
    )
    import json

    seen = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(4)]
    assert [(s["RANK"], s["LOCAL_RANK"], s["GROUP_RANK"]) for s in seen] == [
        (0, 0, 0),
        (1, 1, 0),
        (2, 0, 1),
        (3, 1, 1),
    ]
    assert {(s["WORLD_SIZE"], s["LOCAL_WORLD_SIZE"], s["sum"]) for s in seen} == {(4, 2, 6.0)}


def test_a_failing_process_is_named_by_its_global_rank(ip):
    from IPython.utils.capture import capture_output

    with capture_output(), pytest.raises(Exception) as caught:
        run(
            ip,
            "%%train_distributed --workers 2 --nproc-per-worker 2\n"
            "import jupyter_training as jt\n"
            "if jt.rank() == 3:\n"
            "    raise ValueError('rank three broke')\n",
        )
    assert "rank 3" in str(caught.value) and "rank three broke" in str(caught.value)
