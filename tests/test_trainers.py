"""High-level trainers that find their launcher in the environment run unmodified.

Each cell is written as for a PyTorchJob or torchrun and runs twice: on the local
backend, and as a PyTorchJob whose pods the Kubernetes tests' kubelet runs. Each
test asserts that the ranks formed one group: the world size the trainer saw and
identical weights after training on different shards.
"""

from __future__ import annotations

import pytest
import torch

from k8s.fixtures import *  # noqa: F403 - pytest fixtures: kube, kubeconfig, operator, ...
from k8s.kubelet import run_cell_on_cluster

pytest.importorskip("torch")


def run(ip, source):
    result = ip.run_cell(source, store_history=True)
    result.raise_error()
    return result


@pytest.fixture(params=["local", "kubernetes"])
def launch(request, ip, tmp_path):
    """Run a training cell on 2 workers, locally or as a PyTorchJob's pods."""
    if request.param == "local":
        return lambda cell: run(ip, "%%train_distributed --framework pytorch --workers 2\n" + cell)
    request.getfixturevalue("kubeconfig")
    kube, operator = request.getfixturevalue("kube"), request.getfixturevalue("operator")
    pods = tmp_path / "pods"
    pods.mkdir()
    line = "--framework pytorch --api v1 --workers 2 --timeout 120"
    return lambda cell: run_cell_on_cluster(ip, operator, kube, pods, "pytorchjobs", line, cell)


def assert_one_group(tmp_path, ranks=2):
    seen = [torch.load(tmp_path / f"rank-{r}.pt") for r in range(ranks)]
    assert [s["world"] for s in seen] == [ranks] * ranks
    assert sorted(s["rank"] for s in seen) == list(range(ranks))
    for other in seen[1:]:
        for name, tensor in seen[0]["weights"].items():
            assert torch.equal(tensor, other["weights"][name]), name
    initial = seen[0]["initial"]
    assert any(not torch.equal(initial[n], t) for n, t in seen[0]["weights"].items())


TINY_MODEL = (
    "import torch\n"
    "def make_data(rank, n=32):\n"
    "    g = torch.Generator().manual_seed(10 + rank)\n"
    "    x = torch.randn(n, 4, generator=g)\n"
    "    return x, x.sum(dim=1, keepdim=True)\n"
)


def test_lightning_ddp_num_nodes(ip, tmp_path, launch):
    pytest.importorskip("lightning")
    run(ip, TINY_MODEL + f"out = {str(tmp_path)!r}\n")
    run(
        ip,
        "import lightning as L\n"
        "class Regressor(L.LightningModule):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        torch.manual_seed(0)\n"
        "        self.net = torch.nn.Linear(4, 1)\n"
        "    def training_step(self, batch, _):\n"
        "        x, y = batch\n"
        "        return torch.nn.functional.mse_loss(self.net(x), y)\n"
        "    def configure_optimizers(self):\n"
        "        return torch.optim.SGD(self.parameters(), lr=0.1)\n",
    )
    launch(
        "from torch.utils.data import DataLoader, TensorDataset\n"
        "model = Regressor()\n"
        "initial = {k: v.clone() for k, v in model.state_dict().items()}\n"
        "trainer = L.Trainer(accelerator='cpu', devices=1, num_nodes=2, strategy='ddp',\n"
        "                    max_epochs=2, logger=False, enable_checkpointing=False,\n"
        "                    enable_progress_bar=False, enable_model_summary=False)\n"
        "data = DataLoader(TensorDataset(*make_data(trainer.global_rank)), batch_size=8)\n"
        "trainer.fit(model, data)\n"
        "torch.save({'world': trainer.world_size, 'rank': trainer.global_rank,\n"
        "            'env': type(trainer.strategy.cluster_environment).__name__,\n"
        "            'initial': initial, 'weights': model.state_dict()},\n"
        "           f'{out}/rank-{trainer.global_rank}.pt')\n",
    )
    assert_one_group(tmp_path)
    assert torch.load(tmp_path / "rank-0.pt")["env"] == "TorchElasticEnvironment"


def test_accelerate_multi_cpu(ip, tmp_path, launch):
    pytest.importorskip("accelerate")
    run(ip, TINY_MODEL + f"out = {str(tmp_path)!r}\n")
    launch(
        "from accelerate import Accelerator\n"
        "accelerator = Accelerator(cpu=True)\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Linear(4, 1)\n"
        "initial = {k: v.clone() for k, v in model.state_dict().items()}\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "model, optimizer = accelerator.prepare(model, optimizer)\n"
        "x, y = make_data(accelerator.process_index)\n"
        "for _ in range(5):\n"
        "    optimizer.zero_grad()\n"
        "    accelerator.backward(torch.nn.functional.mse_loss(model(x), y))\n"
        "    optimizer.step()\n"
        "weights = accelerator.unwrap_model(model).state_dict()\n"
        "torch.save({'world': accelerator.num_processes, 'rank': accelerator.process_index,\n"
        "            'initial': initial, 'weights': weights},\n"
        "           f'{out}/rank-{accelerator.process_index}.pt')\n"
        "accelerator.wait_for_everyone()\n",
    )
    assert_one_group(tmp_path)


def test_transformers_trainer(ip, tmp_path, launch):
    pytest.importorskip("transformers")
    run(ip, TINY_MODEL + f"out = {str(tmp_path)!r}\n")
    run(
        ip,
        "class TinyRegressor(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        torch.manual_seed(0)\n"
        "        self.net = torch.nn.Linear(4, 1)\n"
        "    def forward(self, x, labels=None):\n"
        "        pred = self.net(x)\n"
        "        loss = torch.nn.functional.mse_loss(pred, labels)\n"
        "        return {'loss': loss, 'logits': pred}\n"
        "class Rows(torch.utils.data.Dataset):\n"
        "    def __init__(self, rank):\n"
        "        self.x, self.y = make_data(rank)\n"
        "    def __len__(self):\n"
        "        return len(self.x)\n"
        "    def __getitem__(self, i):\n"
        "        return {'x': self.x[i], 'labels': self.y[i]}\n",
    )
    launch(
        "from transformers import Trainer, TrainingArguments\n"
        "args = TrainingArguments(output_dir=f'{out}/hf', use_cpu=True, num_train_epochs=2,\n"
        "                         per_device_train_batch_size=8, learning_rate=0.1,\n"
        "                         report_to=[], save_strategy='no', logging_strategy='no',\n"
        "                         disable_tqdm=True, ddp_backend='gloo')\n"
        "model = TinyRegressor()\n"
        "initial = {k: v.clone() for k, v in model.state_dict().items()}\n"
        "trainer = Trainer(model=model, args=args, train_dataset=Rows(args.process_index))\n"
        "trainer.train()\n"
        "torch.save({'world': args.world_size, 'rank': args.process_index,\n"
        "            'initial': initial, 'weights': model.state_dict()},\n"
        "           f'{out}/rank-{args.process_index}.pt')\n",
    )
    assert_one_group(tmp_path)
