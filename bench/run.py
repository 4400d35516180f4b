#!/usr/bin/python3
"""bench/run.py: gradc against PyTorch on the four workloads of bench/README.md.

    /usr/bin/python3 bench/run.py [--quick] [--gradc PATH] [--rounds N] [--only NAME,...]

Without --gradc it builds gradc (Release) in build-bench/ first. See
bench/README.md for what is measured and how.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TORCH = os.path.join(HERE, "torch_bench.py")
WORKLOADS = ["mlp_small", "mlp_mnist", "mlp_wide", "nplm"]
BATCH = {"mlp_small": 4, "mlp_mnist": 128, "mlp_wide": 256, "nplm": 256}
CHECK_STEPS = 5
CHECK_RTOL = 1e-4          # relative, per step, on the loss before each step


def die(msg):
    sys.exit(f"bench/run.py: {msg}")


def run(cmd, env=None):
    """Runs cmd; returns (stdout, stderr, wall seconds)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        die(f"{' '.join(cmd)} failed (exit {p.returncode}):\n{err.strip()}")
    return out, err, wall


def run_rss(cmd, env=None):
    """Runs cmd, reaping it with os.wait4 for its own peak RSS; returns
    (stdout, stderr, wall seconds, peak RSS in MiB)."""
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, text=True)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode != 0:
        die(f"{' '.join(cmd)} failed (exit {p.returncode}):\n{err.strip()}")
    return out, err, wall, ru.ru_maxrss / 1024.0


def build_gradc():
    bdir = os.path.join(ROOT, "build-bench")
    subprocess.run(["cmake", "-S", ROOT, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", bdir, "-j2", "--target", "gradc"], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(bdir, "gradc")


def flops_per_step(gradc, name):
    out, _, _ = run([gradc, "summary", os.path.join(HERE, name + ".nn")])
    m = re.search(r"^\s*total\s+([\d,]+)", out, re.M)
    if not m:
        die(f"no 'total' FLOPs line in gradc summary of {name}")
    return int(m.group(1).replace(",", ""))


def check_losses(gradc, name, init, work):
    """Trains CHECK_STEPS steps on one batch in gradc and PyTorch; returns the
    two loss lists and the largest relative difference."""
    src = open(os.path.join(HERE, name + ".nn")).read()
    src = re.sub(r'"data/([a-z_]+?)_([a-z]+)\.npy"',
                 lambda m: '"%s"' % os.path.join(HERE, "data", f"{m.group(1)}_check_{m.group(2)}.npy"),
                 src)
    model = os.path.join(work, f"check_{name}.nn")
    with open(model, "w") as f:
        f.write(src)
    log = os.path.join(work, f"check_{name}.jsonl")
    run([gradc, "train", model, "--weights", init, "--epochs", str(CHECK_STEPS), "--threads", "2",
         "-q", "--save", os.path.join(work, "check.safetensors"), "--log", log])
    g = [json.loads(line)["loss"] for line in open(log)]
    t = json.loads(run(["/usr/bin/python3", TORCH, "check", name, init, str(CHECK_STEPS)],
                       env=TORCH_ENV)[0])["losses"]
    worst = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(g, t))
    return g, t, worst


def gradc_time(gradc, name, init, epochs, work):
    log = os.path.join(work, f"time_{name}.jsonl")
    _, err, _, rss = run_rss([gradc, "train", os.path.join(HERE, name + ".nn"), "--weights", init,
                              "--epochs", str(epochs), "--threads", "2", "-q",
                              "--save", os.path.join(work, "time.safetensors"), "--log", log])
    sps = [json.loads(line)["samples_per_s"] for line in open(log)]
    ms = [1000.0 * BATCH[name] / s for s in sps]
    return statistics.median(ms[1:]), rss


def torch_time(name, init, epochs):
    out, _, _, rss = run_rss(["/usr/bin/python3", TORCH, "time", name, init, str(epochs)],
                             env=TORCH_ENV)
    r = json.loads(out)
    return statistics.median(r["ms_per_step"][1:]), rss, r


def gradc_first(gradc, name, init, work, cache):
    """Process start to the end of the first training step: the line
    `gradc train --profile` prints (from /proc/self/stat, to 10 ms). cache:
    the object cache's directory (GRADC_CACHE_DIR), "off" for a cold start
    that compiles everything."""
    env = dict(os.environ, GRADC_CACHE_DIR=cache)
    _, err, wall, _ = run_rss([gradc, "train", os.path.join(HERE, name + ".nn"), "--weights", init,
                               "--steps", "1", "--threads", "2", "-q", "--profile",
                               "--save", os.path.join(work, "first.safetensors")], env=env)
    m = re.search(r"first step finished ([0-9.]+) s after the process started", err)
    return float(m.group(1)) if m else wall


def torch_first(name, init):
    """Process start (just before the spawn) to the end of the first step,
    as torch_bench.py's `first` mode reports it."""
    t0 = time.time()
    out = run_rss(["/usr/bin/python3", TORCH, "first", name, init], env=TORCH_ENV)[0]
    return json.loads(out)["first_step_s"] - t0


def core_of(gradc):
    """The OpenBLAS kernels gradc picks on this CPU, from its progress line."""
    out, err, _ = run([gradc, "train", os.path.join(HERE, "mlp_small.nn"), "--steps", "1",
                       "--save", os.path.join(WORK, "core.safetensors")])
    m = re.search(r"OpenBLAS (\S+)", out + err)
    return m.group(1) if m else None


def fmt_ms(v):
    return "%.4f" % v if v >= 0.1 else "%.5f" % v


def main():
    global TORCH_ENV, WORK
    ap = argparse.ArgumentParser(description="gradc against PyTorch on bench/'s workloads")
    ap.add_argument("--gradc", help="the gradc binary (default: build it in build-bench/)")
    ap.add_argument("--quick", action="store_true", help="1 round of 3 epochs (about a minute)")
    ap.add_argument("--rounds", type=int, help="rounds of A B (default 5, --quick 1)")
    ap.add_argument("--only", help="comma-separated workloads (default all four)")
    a = ap.parse_args()
    names = a.only.split(",") if a.only else WORKLOADS
    for n in names:
        if n not in WORKLOADS:
            ap.error(f"unknown workload '{n}' (the workloads: {', '.join(WORKLOADS)})")
    rounds = a.rounds or (1 if a.quick else 5)
    epochs = 3 if a.quick else 4           # the first of them is the warm-up
    if not os.path.exists("/usr/bin/python3"):
        die("/usr/bin/python3 not found (PyTorch comes from Debian's python3-torch)")
    gradc = os.path.abspath(a.gradc) if a.gradc else build_gradc()
    if not os.access(gradc, os.X_OK):
        die(f"cannot run gradc at '{gradc}'")
    if not all(os.path.exists(os.path.join(HERE, "data", f"{n}_check_{'ctx' if n == 'nplm' else 'x'}.npy"))
               for n in WORKLOADS):
        subprocess.run(["/usr/bin/python3", os.path.join(HERE, "make_data.py")], check=True)

    WORK = tempfile.mkdtemp(prefix="gradc-bench-")
    try:
        core = core_of(gradc)
        TORCH_ENV = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS="2")
        if core:
            TORCH_ENV["OPENBLAS_CORETYPE"] = core
        peak_bin = os.path.join(WORK, "sgemm_peak")
        subprocess.run(["cc", "-O2", "-std=c11", "-o", peak_bin, os.path.join(HERE, "sgemm_peak.c"),
                        "-lopenblas"], check=True)
        tver = run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                   env=TORCH_ENV)[0].strip()
        print(f"bench/run.py {time.strftime('%Y-%m-%d %H:%M')}: {os.cpu_count()} CPUs, "
              f"{rounds} round(s) of gradc, PyTorch interleaved; {epochs} epochs a run, the first one warm-up")
        print(f"  gradc: {gradc} --threads 2, OpenBLAS {core}")
        print(f"  PyTorch {tver} eager: torch.set_num_threads(2), OMP_WAIT_POLICY=PASSIVE, "
              f"OPENBLAS_CORETYPE={core}")
        peaks = []

        def measure_peak():
            out = run([peak_bin, "2048", "10"], env=TORCH_ENV)[0]
            peaks.append(float(re.search(r": ([\d.]+) GFLOP/s", out).group(1)))

        rows = []
        for name in names:
            # The peak is measured before each workload, and the best of
            # all is the peak: a busy host only ever lowers a measurement.
            measure_peak()
            init = os.path.join(WORK, f"init_{name}.safetensors")
            run(["/usr/bin/python3", TORCH, "init", name, init])
            g, t, worst = check_losses(gradc, name, init, WORK)
            status = "agree" if worst <= CHECK_RTOL else "DISAGREE"
            print(f"\n{name}: first {CHECK_STEPS} losses (one batch, same weights): {status}, "
                  f"largest relative difference {worst:.1e} (tolerance {CHECK_RTOL:.0e})")
            print("  gradc   " + " ".join("%.6f" % v for v in g))
            print("  PyTorch " + " ".join("%.6f" % v for v in t))
            flops = flops_per_step(gradc, name)
            gms, tms, grss, trss, gfirst, gwarm, tfirst = [], [], [], [], [], [], []
            cache = os.path.join(WORK, "cache")
            gradc_first(gradc, name, init, WORK, cache)  # fills the object cache
            for r in range(rounds):
                ms, rss = gradc_time(gradc, name, init, epochs, WORK)
                gms.append(ms)
                grss.append(rss)
                ms, rss, _ = torch_time(name, init, epochs)
                tms.append(ms)
                trss.append(rss)
                gfirst.append(gradc_first(gradc, name, init, WORK, "off"))
                gwarm.append(gradc_first(gradc, name, init, WORK, cache))
                tfirst.append(torch_first(name, init))
                print(f"  round {r + 1}: gradc {gms[-1]:.5f} ms/step, PyTorch {tms[-1]:.5f} ms/step, "
                      f"start {gfirst[-1]:.3f} s (cached {gwarm[-1]:.3f} s) / {tfirst[-1]:.3f} s")
            row = dict(name=name, g=statistics.median(gms), t=statistics.median(tms), flops=flops,
                       gfirst=statistics.median(gfirst), gwarm=statistics.median(gwarm),
                       tfirst=statistics.median(tfirst),
                       grss=max(grss), trss=max(trss), check=status)
            rows.append(row)
        peak = max(peaks)
        print(f"\n  SGEMM peak (bench/sgemm_peak.c, 2048^2, 2 threads, {core}), before each "
              f"workload: {' '.join('%.1f' % p for p in peaks)} GFLOP/s; the best, {peak:.1f}, is "
              "the peak")
        print(f"\nmedians over {rounds} round(s); FLOPs per step from `gradc summary` (forward, "
              f"backward, update); % of the {peak:.0f} GFLOP/s SGEMM peak; start = process start "
              "to the end of the first training step (gradc: its --profile line, to 10 ms, "
              "compiling everything (GRADC_CACHE_DIR=off), and cached: with every object in "
              "the object cache; PyTorch: from just before the spawn); RSS = peak resident set\n")
        hdr = ("workload", "gradc ms", "torch ms", "speed-up", "gradc GF/s", "% peak",
               "torch GF/s", "% peak", "gradc start", "cached", "torch start", "gradc RSS",
               "torch RSS", "losses")
        fmt = "%-9s %9s %9s %8s %10s %6s %10s %6s %11s %7s %11s %9s %9s %6s"
        print(fmt % hdr)
        for r in rows:
            gg, tg = r["flops"] / r["g"] / 1e6, r["flops"] / r["t"] / 1e6
            print(fmt % (r["name"], fmt_ms(r["g"]), fmt_ms(r["t"]), "%.2fx" % (r["t"] / r["g"]),
                         "%.1f" % gg, "%.0f%%" % (100 * gg / peak), "%.1f" % tg,
                         "%.0f%%" % (100 * tg / peak), "%.3f s" % r["gfirst"], "%.3f s" % r["gwarm"],
                         "%.3f s" % r["tfirst"],
                         "%.0f MiB" % r["grss"], "%.0f MiB" % r["trss"], r["check"]))
        if any(r["check"] != "agree" for r in rows):
            sys.exit(1)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


TORCH_ENV = None
WORK = None

if __name__ == "__main__":
    main()
