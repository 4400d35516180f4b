#!/usr/bin/python3
"""bench/mpi_scaling.py: data-parallel training over MPI against one process.

    /usr/bin/python3 bench/mpi_scaling.py [--gradc PATH] [--rounds N] [--epochs N]
                                          [--only NAME,...]

For each workload of bench/ (its data made by bench/make_data.py), trains
with the same global batch G (the train block's) four ways:

  1p x 1t   one process, one thread               gradc train --batch G --threads 1
  1p x 2t   one process, two threads              gradc train --batch G --threads 2
  2p x 1t   two processes of one thread, G/2 each mpirun -np 2 gradc train --mpi
                                                  --batch G/2 --threads 1
  2p x 1t*  two processes, G each (global 2G)     the same with --batch G

and reports the training samples a second (all processes' rows; the log's
samples_per_s, which counts time in training steps only), the median over
the epochs after the first and over the rounds, which alternate the
configurations. Without --gradc it uses build/gradc. docs/distributed.md
has a run and what it means on a 2-core machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKLOADS = {"mlp_mnist": 128, "mlp_wide": 256, "nplm": 256}
# Epochs a run takes, so that it lasts a few seconds on one core.
EPOCHS = {"mlp_mnist": 4, "mlp_wide": 12, "nplm": 3}
CONFIGS = ["1p x 1t", "1p x 2t", "2p x 1t", "2p x 1t*"]


def die(msg):
    sys.exit(f"bench/mpi_scaling.py: {msg}")


def command(gradc, model, config, batch, epochs, log):
    base = [gradc, "train", model, "-q", "--epochs", str(epochs), "--log", log,
            "--save", os.path.join(os.path.dirname(log), "w.safetensors")]
    if config == "1p x 1t":
        return base + ["--batch", str(batch), "--threads", "1"]
    if config == "1p x 2t":
        return base + ["--batch", str(batch), "--threads", "2"]
    each = batch // 2 if config == "2p x 1t" else batch
    return (["mpirun", "-np", "2", "--bind-to", "core"] + base +
            ["--mpi", "--batch", str(each), "--threads", "1"])


def samples_per_s(cmd, log):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               GRADC_CACHE_DIR="off")
    p = subprocess.run(cmd, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        die(f"{' '.join(cmd)} failed (exit {p.returncode}):\n{p.stderr.strip()}")
    with open(log) as f:
        rates = [json.loads(line)["samples_per_s"] for line in f]
    return rates[1:] if len(rates) > 1 else rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gradc", default=os.path.join(ROOT, "build", "gradc"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=0, help="epochs a run (0: per workload)")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(WORKLOADS)
    for n in names:
        if n not in WORKLOADS:
            die(f"unknown workload '{n}' (one of {', '.join(WORKLOADS)})")
        if not os.path.exists(os.path.join(HERE, "data", f"{n}_x.npy" if n != "nplm"
                                           else "nplm_ctx.npy")):
            die(f"no data for {n}: run /usr/bin/python3 bench/make_data.py first")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in names:
            model = os.path.join(HERE, f"{n}.nn")
            g = WORKLOADS[n]
            epochs = a.epochs or EPOCHS[n]
            rates = {c: [] for c in CONFIGS}
            for _ in range(a.rounds):
                for c in CONFIGS:
                    log = os.path.join(tmp, "log.jsonl")
                    rates[c] += samples_per_s(command(a.gradc, model, c, g, epochs, log), log)
            med = {c: statistics.median(rates[c]) for c in CONFIGS}
            rows.append((n, g, med))
            print(f"{n}: " + ", ".join(f"{c} {med[c]:.0f}/s" for c in CONFIGS), flush=True)
    print()
    print("| workload | global batch | " + " | ".join(CONFIGS) +
          " | 2p x 1t / 1p x 1t | 2p x 1t / 1p x 2t |")
    print("|---|---|" + "---|" * (len(CONFIGS) + 2))
    for n, g, med in rows:
        print(f"| {n} | {g} | " + " | ".join(f"{med[c]:,.0f}" for c in CONFIGS) +
              f" | {med['2p x 1t'] / med['1p x 1t']:.2f}x | "
              f"{med['2p x 1t'] / med['1p x 2t']:.2f}x |")


if __name__ == "__main__":
    main()
