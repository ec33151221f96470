"""Train one model on the prepared MNIST data and report per-epoch progress and metrics.

    train.py --model mlp|cnn|rnn|lstm|autoencoder --data DATA.npz [--epochs N] [--lr LR]
             [--batch B] [--threads T] [--seed S] [--processes P]

Prints the ccspec protocol lines: `# ccspec progress=...` after every epoch, then the
outputs `accuracy` (test accuracy, 0-1; classifiers) or `loss` (test reconstruction MSE;
the autoencoder), `seconds` (training and evaluation, without start-up), and `history`
(the test metric after each epoch). With `--processes P` > 1 the model is trained with
torch.distributed data parallelism (gloo backend, P processes on the CPU): each process
takes every P-th batch of an epoch and their gradients are averaged, so an epoch sees the
same images in P times fewer steps; the outputs are the same.

It imports only torch and numpy (not ccspec), so it runs on any host with torch.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from torch import nn
except ImportError:
    sys.exit(
        "train: torch is missing; install the CPU build: pip install -e '.[mnist]' "
        "(see the README's MNIST section)"
    )

CLASSIFIERS = ("mlp", "cnn", "rnn", "lstm")
MODELS = (*CLASSIFIERS, "autoencoder")


class Recurrent(nn.Module):
    """Reads an image row by row (28 steps of 28 pixels); classifies from the last state."""

    def __init__(self, cell: type[nn.RNN] | type[nn.LSTM], hidden: int = 64) -> None:
        super().__init__()
        self.rnn = cell(28, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.view(-1, 28, 28))
        return self.head(out[:, -1])


def build(name: str) -> nn.Module:
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    if name == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
        )  # fmt: skip
    if name == "rnn":
        return Recurrent(nn.RNN)
    if name == "lstm":
        return Recurrent(nn.LSTM)
    if name == "autoencoder":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU(),
            nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 784), nn.Sigmoid(),
        )  # fmt: skip
    raise SystemExit(f"train: unknown model {name!r}; choose one of {', '.join(MODELS)}")


def load(path: str) -> dict[str, torch.Tensor]:
    with np.load(path) as data:
        return {
            "x_train": torch.from_numpy(data["x_train"].astype(np.float32) / 255).unsqueeze(1),
            "y_train": torch.from_numpy(data["y_train"]),
            "x_test": torch.from_numpy(data["x_test"].astype(np.float32) / 255).unsqueeze(1),
            "y_test": torch.from_numpy(data["y_test"]),
        }


def evaluate(model: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor) -> float:
    """Test accuracy of a classifier, or the autoencoder's reconstruction MSE."""
    model.eval()
    with torch.no_grad():
        out = model(x)
        if name == "autoencoder":
            metric = nn.functional.mse_loss(out, x.flatten(1)).item()
        else:
            metric = (out.argmax(1) == y).float().mean().item()
    model.train()
    return metric


def say(line: str) -> None:
    print(line, flush=True)


def train(args: argparse.Namespace, rank: int = 0, world: int = 1) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # same initial weights in every process
    data = load(args.data)
    model = build(args.model)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.MSELoss() if args.model == "autoencoder" else nn.CrossEntropyLoss()
    x, y = data["x_train"], data["y_train"]
    metric_name = "loss" if args.model == "autoencoder" else "accuracy"
    history: list[float] = []
    started = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed + epoch))
        # each process takes every world-th batch of the same shuffled order; all take
        # as many (the last few are dropped), or one would wait forever for the others
        batches = list(torch.split(order, args.batch))
        batches = batches[: len(batches) // world * world][rank::world]
        total = 0.0
        for idx in batches:
            optimiser.zero_grad()
            out = model(x[idx])
            loss = loss_fn(out, x[idx].flatten(1) if args.model == "autoencoder" else y[idx])
            loss.backward()
            optimiser.step()
            total += loss.item()
        if rank == 0:
            metric = evaluate(model, args.model, data["x_test"], data["y_test"])
            history.append(round(metric, 4))
            percent = round(100 * epoch / args.epochs)
            say(
                f'# ccspec progress={percent} message="epoch {epoch}/{args.epochs}: '
                f'train loss {total / max(len(batches), 1):.4f}, test {metric_name} {metric:.4f}"'
            )
    if rank == 0:
        seconds = time.perf_counter() - started
        say(
            f"{args.model}: test {metric_name} {history[-1]:.4f} after {args.epochs} epochs, {seconds:.1f} s"
        )
        say(f"# ccspec output model={json.dumps(args.model)}")
        say(f"# ccspec output {metric_name}={history[-1]}")
        say(f"# ccspec output seconds={seconds:.2f}")
        say(f"# ccspec output epochs={args.epochs}")
        say(f"# ccspec output processes={world}")
        say(f"# ccspec output history={json.dumps(history)}")


def worker(rank: int, args: argparse.Namespace, store: str) -> None:
    """One process of a distributed run: joins the group through a file store (no port to pick)."""
    dist.init_process_group(
        "gloo", init_method=f"file://{store}", rank=rank, world_size=args.processes
    )
    try:
        train(args, rank, args.processes)
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=MODELS)
    parser.add_argument("--data", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1, help=">1: distributed data parallel")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    torch.set_num_interop_threads(1)
    where = (
        f"slurm job {os.environ['SLURM_JOB_ID']}"
        if "SLURM_JOB_ID" in os.environ
        else "no slurm job"
    )
    say(f"torch {torch.__version__} on {socket.gethostname()} ({where}), {args.threads} thread(s)")
    if args.processes == 1:
        train(args)
        return
    say(f"distributed: {args.processes} processes, gloo backend, {args.threads} thread(s) each")
    with tempfile.TemporaryDirectory(prefix="mnist-ddp-") as folder:
        store = str(Path(folder) / "store")
        # fork on Linux: the children inherit the imported torch instead of importing it again
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        mp.start_processes(worker, (args, store), nprocs=args.processes, start_method=method)


if __name__ == "__main__":
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the processes share this machine
    main()
