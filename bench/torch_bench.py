#!/usr/bin/python3
"""The four benchmark workloads in PyTorch, the twins of bench/<name>.nn.

Same shapes, data (bench/data/*.npy), optimizer and hyperparameters as the
model files. The initial weights come from a seeded NumPy generator and are
written as a safetensors file with gradc's parameter names (W as [in, out]),
which gradc loads with `gradc train --weights F`, so both start from the same
point. bench/run.py drives it; by hand (PyTorch from Debian, so /usr/bin/python3):

    /usr/bin/python3 bench/torch_bench.py init  mlp_mnist INIT.safetensors
    /usr/bin/python3 bench/torch_bench.py check mlp_mnist INIT.safetensors 5
    /usr/bin/python3 bench/torch_bench.py time  mlp_mnist INIT.safetensors 4
    /usr/bin/python3 bench/torch_bench.py first mlp_mnist INIT.safetensors

init writes the weights; check trains 5 steps on the one-batch check data and
prints the loss before each step; time trains 4 epochs on the full data and
prints the mean ms/step of each epoch; first trains one step and exits (the
start-up time). Each prints one JSON object on stdout. The threads are 2
(torch.set_num_threads); OMP_WAIT_POLICY and OPENBLAS_CORETYPE are the
caller's (bench/run.py sets them before Python starts, as they must be).
"""
import json
import os
import struct
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

# name: batch, inputs, parameters (gradc name, shape, init), optimizer
BATCH = {"mlp_small": 4, "mlp_mnist": 128, "mlp_wide": 256, "nplm": 256}
INPUTS = {"mlp_small": ("x", "y"), "mlp_mnist": ("x", "y"), "mlp_wide": ("x", "y"),
          "nplm": ("ctx", "next")}


def dense_params(name, n_in, n_out, gain2, bias=True):
    """W [in, out] ~ uniform with variance gain2 / fan_in (He for ReLU and
    2, Glorot-like otherwise), b = 0."""
    out = [(name + ".W", (n_in, n_out), ("uniform", np.sqrt(3.0 * gain2 / n_in)))]
    if bias:
        out.append((name + ".b", (n_out,), ("zero", 0)))
    return out


PARAMS = {
    "mlp_small": dense_params("h", 2, 4, 1) + dense_params("p", 4, 1, 1),
    "mlp_mnist": dense_params("h1", 784, 256, 2) + dense_params("h2", 256, 256, 2)
    + dense_params("logits", 256, 10, 1),
    "mlp_wide": dense_params("h1", 1024, 2048, 2) + dense_params("h2", 2048, 2048, 2)
    + dense_params("logits", 2048, 10, 1),
    "nplm": [("e.E", (1000, 64), ("normal", 1.0))] + dense_params("hidden", 256, 512, 1)
    + dense_params("logits", 512, 1000, 1) + dense_params("logits_1", 256, 1000, 1, bias=False),
}


def init_weights(name):
    rng = np.random.default_rng(7)
    out = {}
    for pname, shape, (kind, a) in PARAMS[name]:
        if kind == "uniform":
            out[pname] = rng.uniform(-a, a, shape).astype(np.float32)
        elif kind == "normal":
            out[pname] = (a * rng.standard_normal(shape)).astype(np.float32)
        else:
            out[pname] = np.zeros(shape, np.float32)
    return out


def save_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for k, a in tensors.items():
        raw = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for k, t in header.items():
        b, e = t["data_offsets"]
        out[k] = np.frombuffer(data[8 + n + b:8 + n + e], dtype="<f4").reshape(t["shape"]).copy()
    return out


def build(torch, name, weights):
    """The model as torch.nn modules with the weights loaded, and its loss."""
    nn, F = torch.nn, torch.nn.functional

    def linear(prefix, bias=True):
        w = torch.from_numpy(weights[prefix + ".W"])
        m = nn.Linear(w.shape[0], w.shape[1], bias=bias)
        with torch.no_grad():
            m.weight.copy_(w.t())
            if bias:
                m.bias.copy_(torch.from_numpy(weights[prefix + ".b"]))
        return m

    if name == "mlp_small":
        model = nn.Sequential(linear("h"), nn.Sigmoid(), linear("p"), nn.Sigmoid())
        return model, lambda x, y: F.mse_loss(model(x), y)
    if name in ("mlp_mnist", "mlp_wide"):
        model = nn.Sequential(linear("h1"), nn.ReLU(), linear("h2"), nn.ReLU(), linear("logits"))
        return model, lambda x, y: F.cross_entropy(model(x), y)

    class NPLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(1000, 64)
            with torch.no_grad():
                self.emb.weight.copy_(torch.from_numpy(weights["e.E"]))
            self.hidden = linear("hidden")
            self.out = linear("logits")
            self.direct = linear("logits_1", bias=False)

        def forward(self, ctx):
            x = self.emb(ctx).reshape(ctx.shape[0], -1)
            return self.out(torch.tanh(self.hidden(x))) + self.direct(x)

    model = NPLM()
    return model, lambda x, y: F.cross_entropy(model(x), y)


def optimizer(torch, name, model):
    if name == "mlp_small":
        return torch.optim.SGD(model.parameters(), lr=0.5)
    if name == "mlp_wide":
        return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=1e-3)


def load_data(torch, name, check):
    arrays = []
    for inp in INPUTS[name]:
        a = np.load(os.path.join(DATA, f"{name}_{'check_' if check else ''}{inp}.npy"))
        t = torch.from_numpy(a)
        arrays.append(t.long() if a.dtype.kind == "i" else t)
    return arrays


def main():
    mode, name, init = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "init":
        save_safetensors(init, init_weights(name))
        return
    import torch  # after the environment is set: the import is timed in "first"
    torch.set_num_threads(2)
    torch.manual_seed(1)
    model, loss_fn = build(torch, name, load_safetensors(init))
    opt = optimizer(torch, name, model)
    x, y = load_data(torch, name, mode == "check")
    b, n = BATCH[name], x.shape[0]

    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(xb, yb)
        loss.backward()
        opt.step()
        return loss.item()

    if mode == "check":
        losses = [step(x, y) for _ in range(int(sys.argv[4]))]
        print(json.dumps({"losses": losses}))
    elif mode == "first":
        step(x[:b], y[:b])
        print(json.dumps({"first_step_s": time.time()}))
    elif mode == "time":
        ms = []
        for _ in range(int(sys.argv[4])):
            perm = torch.randperm(n)
            t0 = time.perf_counter()
            for at in range(0, n, b):
                idx = perm[at:at + b]
                step(x[idx], y[idx])
            ms.append(1000 * (time.perf_counter() - t0) / ((n + b - 1) // b))
        print(json.dumps({"ms_per_step": ms, "threads": torch.get_num_threads(),
                          "torch": torch.__version__}))
    else:
        sys.exit(f"torch_bench.py: unknown mode '{mode}'")


if __name__ == "__main__":
    main()
