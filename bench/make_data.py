#!/usr/bin/python3
"""Writes the benchmark's data to bench/data/ as .npy files (deterministic).

mlp_mnist takes the first 9,984 images of examples/data's MNIST t10k (78
batches of 128); the other workloads get synthetic data from a fixed seed.
For each workload <name>_check_*.npy holds exactly one batch: with one batch
per epoch the order of the rows cannot matter, so gradc and PyTorch see the
same data at every step of the loss check.

    /usr/bin/python3 bench/make_data.py
"""
import gzip
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
MNIST = os.path.join(HERE, "..", "examples", "data")

# name: (batch, rows per epoch)
SIZES = {"mlp_small": (4, 10000), "mlp_mnist": (128, 9984),
         "mlp_wide": (256, 2048), "nplm": (256, 10240)}


def mnist(n):
    with gzip.open(os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), dtype=np.uint8, offset=16).reshape(-1, 784)
    with gzip.open(os.path.join(MNIST, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    return (images[:n].astype(np.float32) / 255.0), labels[:n].astype(np.int32)


def make(name, rng):
    b, n = SIZES[name]
    if name == "mlp_small":
        x = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
        y = (1 / (1 + np.exp(-3 * x[:, :1] * x[:, 1:]))).astype(np.float32)
        return {"x": x, "y": y}
    if name == "mlp_mnist":
        x, y = mnist(n)
        return {"x": x, "y": y}
    if name == "mlp_wide":
        x = rng.standard_normal((n, 1024)).astype(np.float32)
        w = rng.standard_normal((1024, 10)).astype(np.float32)
        return {"x": x, "y": np.argmax(x @ w, axis=1).astype(np.int32)}
    # nplm: a token stream where the next token mostly follows from the last
    # two, so that the model has something to learn
    stream = np.empty(n + 4, dtype=np.int64)
    stream[:4] = rng.integers(0, 1000, 4)
    noise = rng.integers(0, 1000, n + 4)
    coin = rng.random(n + 4) < 0.3
    for i in range(4, n + 4):
        stream[i] = noise[i] if coin[i] else (7 * stream[i - 1] + 3 * stream[i - 2] + 1) % 1000
    ctx = np.stack([stream[i:i + n] for i in range(4)], axis=1).astype(np.int32)
    return {"ctx": ctx, "next": stream[4:].astype(np.int32)}


def main():
    os.makedirs(DATA, exist_ok=True)
    for k, name in enumerate(SIZES):
        rng = np.random.default_rng(1000 + k)
        arrays = make(name, rng)
        b = SIZES[name][0]
        for key, a in arrays.items():
            np.save(os.path.join(DATA, f"{name}_{key}.npy"), np.ascontiguousarray(a))
            np.save(os.path.join(DATA, f"{name}_check_{key}.npy"), np.ascontiguousarray(a[:b]))
    print(f"make_data: wrote {DATA}", file=sys.stderr)


if __name__ == "__main__":
    main()
