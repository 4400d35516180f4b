#!/usr/bin/env python3
"""Regenerates the fuzz targets' seed corpus, tests/fuzz/corpus/<target>/.

Each seed is an input in the layout its body reads (tests/fuzz/fuzz.h and
the comment atop each fuzz_<target>.c): the examples' models for the front
end; for the loaders, the fixtures of tests/data behind a flags byte (and
for two-file targets the length of the first file). Run from anywhere:
python3 tests/fuzz/make_corpus.py. No NumPy needed.
"""
import glob
import gzip
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "data")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def target(name):
    d = os.path.join(HERE, "corpus", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def put(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def two(flags, first, second):
    return bytes([flags]) + struct.pack("<H", len(first)) + first + second


# ---- the front end: every example and benchmark model ----------------------
d = target("frontend")
for p in sorted(glob.glob(os.path.join(ROOT, "examples", "*.nn")) +
                glob.glob(os.path.join(ROOT, "examples", "embed", "*.nn")) +
                glob.glob(os.path.join(ROOT, "bench", "*.nn"))):
    put(d, os.path.basename(p), read(p))
# The prelude's optimizer rules, as a model's own rules.
put(d, "prelude.nn", read(os.path.join(ROOT, "frontend", "prelude.nn")) +
    b"\ninput x[B, 2]\nparam w[2, 2] = 0\nloss = mse(x @ w, x)\n"
    b"train {\n  optimizer = adamw(lr = 0.01)\n}\n")

# ---- safetensors: weights and checkpoints of fuzz_safetensors.c's model -----
# h.W [3, 2], h.b [2], s [], and the states opt.m.<name>.
d = target("safetensors")
shapes = [("h.W", [3, 2]), ("h.b", [2]), ("s", [])]


def safetensors(tensors, meta, dtype="F32"):
    fmt, size = ("<f", 4) if dtype == "F32" else ("<d", 8)
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, shape in tensors:
        n = 1
        for k in shape:
            n *= k
        raw = b"".join(struct.pack(fmt, 0.5 * i - 1) for i in range(n))
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


states = [("opt.m." + n, s) for n, s in shapes]
ckpt_meta = {"format": "gradc", "model": "st", "step": "12", "epoch": "3",
             "epoch_rows": "4", "rng": "0123456789abcdef 1 2 fedcba9876543210",
             "model_hash": "00112233445566ff", "seed": "7"}
put(d, "weights_f32", b"\x00" + safetensors(shapes, {"format": "gradc", "model": "st"}))
put(d, "weights_f64_nometa", b"\x01" + safetensors(shapes, None, "F64"))
put(d, "weights_states", b"\x00" + safetensors(shapes + states, {"format": "gradc"}))
put(d, "weights_extra_tensor",
    b"\x04" + safetensors(shapes + [("other", [2, 2])], {"format": "gradc"}, "F64"))
put(d, "checkpoint", b"\x02" + safetensors(shapes + states, ckpt_meta))
put(d, "checkpoint_f64", b"\x03" + safetensors(shapes + states, ckpt_meta, "F64"))
put(d, "checkpoint_vocab_classes", b"\x02" + safetensors(
    shapes + states, dict(ckpt_meta, vocab="\n abcdefghij\u00e9", classes="bird\ncat\ndog",
                          context="3")))
put(d, "weights_vocab_bad", b"\x00" + safetensors(shapes, {"vocab": "ba"}))

# ---- CSV: flags 0x02 header, 0x04 by name, 0x08 float label, 0x10 classes,
# 0x20 x only ----------------------------------------------------------------
d = target("csv")
tiny = read(os.path.join(DATA, "tiny.csv"))
put(d, "tiny_names", b"\x06" + tiny)
put(d, "tiny_index_classes", b"\x12" + tiny)
put(d, "tiny_predict", b"\x26" + tiny)
put(d, "numbers_noheader", b"\x00" + b"0.5,1,2\n-1,2e3,0\n3,4,1\n")
put(d, "numbers_float_label", b"\x0b" + b"a,b,c\n1,2,0.5\n3,4,-1.5\n")
put(d, "bad_number", b"\x02" + read(os.path.join(DATA, "bad_number.csv")))
put(d, "bad_row", b"\x02" + read(os.path.join(DATA, "bad_row.csv")))
put(d, "quotes", b"\x06" + b'"x1","x2","label"\n"1,5",2,"a ""b"""\n3,4,c\r\n')

# ---- IDX: two files; flags 0x02/0x04 gzip them, 0x08 no labels, 0x10 flat
# model, 0x20 scale 1/255 ------------------------------------------------------
d = target("idx")
imgs = read(os.path.join(DATA, "five-images-idx3-ubyte"))
labs = read(os.path.join(DATA, "five-labels-idx1-ubyte"))
imgs_gz = read(os.path.join(DATA, "five-images-idx3-ubyte.gz"))
labs_gz = read(os.path.join(DATA, "five-labels-idx1-ubyte.gz"))
put(d, "five", two(0x00, imgs, labs))
put(d, "five_flat_scaled", two(0x31, imgs, labs))
put(d, "five_gz_files", two(0x00, imgs_gz, labs_gz))
put(d, "five_harness_gz", two(0x06, imgs, labs))
put(d, "five_images_only", two(0x08, imgs, b""))
put(d, "four_labels", two(0x00, imgs, read(os.path.join(DATA, "four-labels-idx1-ubyte"))))
put(d, "truncated_gz", two(0x00, read(os.path.join(DATA, "truncated-images-idx3-ubyte.gz")),
                           labs))
put(d, "two_members_gz", two(0x00, imgs_gz[:], labs_gz + gzip.compress(b"", mtime=0)))

# ---- .npy: two files (x, y); flags 0x02/0x04 gzip them, 0x08 x alone, 0x10
# unnamed, 0x20 x only needed ------------------------------------------------------
d = target("npy")
npy = {n: read(os.path.join(DATA, n + ".npy")) for n in
       ["x_f4", "x_f4_be", "x_f8_v2", "x_fortran", "x_nan", "x_rows4", "x_u1_3d",
        "y_big", "y_f4", "y_i8", "y_u1"]}
put(d, "f4_i8", two(0x00, npy["x_f4"], npy["y_i8"]))
put(d, "be_u1_f64", two(0x01, npy["x_f4_be"], npy["y_u1"]))
put(d, "v2_i8_gz", two(0x06, npy["x_f8_v2"], npy["y_i8"]))
put(d, "u1_3d_unnamed", two(0x10, npy["y_u1"], npy["x_u1_3d"]))
put(d, "fortran", two(0x00, npy["x_fortran"], npy["y_i8"]))
put(d, "nan", two(0x00, npy["x_nan"], npy["y_i8"]))
put(d, "rows4", two(0x00, npy["x_rows4"], npy["y_i8"]))
put(d, "y_big", two(0x00, npy["x_f4"], npy["y_big"]))
put(d, "y_f4", two(0x00, npy["x_f4"], npy["y_f4"]))
put(d, "x_alone", two(0x08, npy["x_f4"], b""))
put(d, "x_only_needed", two(0x20, npy["x_f4"], b""))
put(d, "gz_file", two(0x00, gzip.compress(npy["x_f4"], mtime=0), npy["y_i8"]))

# ---- text: flags 0x02 gzip, 0x0c context - 1, 0x10 fixed vocabulary, 0x20
# limit 12 -------------------------------------------------------------------------
d = target("text")
tiny_txt = read(os.path.join(DATA, "tiny.txt"))
shakespeare = read(os.path.join(ROOT, "examples", "data", "tinyshakespeare.txt"))[:2048]
put(d, "tiny_context3", b"\x08" + tiny_txt)
put(d, "tiny_fixed_vocab", b"\x14" + tiny_txt)
put(d, "tiny_limit12_gz", b"\x22" + tiny_txt)
put(d, "shakespeare", b"\x0c" + shakespeare)
put(d, "short", b"\x0c" + b"ab")
put(d, "gz_file", b"\x00" + gzip.compress(tiny_txt, mtime=0))
