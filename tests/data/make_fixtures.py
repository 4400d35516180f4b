#!/usr/bin/env python3
"""Regenerates the data-loader fixtures in tests/data (test_rt_data.c).

The .npy files are written by NumPy itself (numpy.save and
numpy.lib.format.write_array), so the reader is tested against the reference
writer; the IDX files follow the MNIST page's layout byte for byte. Run from
anywhere: python3 tests/data/make_fixtures.py (needs numpy).
"""
import gzip
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def npy(name, arr, version=None):
    with open(path(name), "wb") as f:
        np.lib.format.write_array(f, arr, version=version)


def idx(name, magic, dims, data):
    raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)
    with open(path(name), "wb") as f:
        f.write(raw)
    return raw


def gz(name, raw):
    # mtime 0: the same bytes on every run.
    with open(path(name), "wb") as f:
        f.write(gzip.compress(raw, mtime=0))


# IDX: 5 images of 3 x 4 pixels, pixel k of image i = 50 * i + k; labels.
pixels = [50 * i + k for i in range(5) for k in range(12)]
images = idx("five-images-idx3-ubyte", 0x803, [5, 3, 4], pixels)
labels = idx("five-labels-idx1-ubyte", 0x801, [5], [3, 0, 2, 1, 2])
gz("five-images-idx3-ubyte.gz", images)
gz("five-labels-idx1-ubyte.gz", labels)
# A gzip stream cut in the middle.
with open(path("five-images-idx3-ubyte.gz"), "rb") as f:
    whole = f.read()
with open(path("truncated-images-idx3-ubyte.gz"), "wb") as f:
    f.write(whole[: len(whole) // 2])
idx("four-labels-idx1-ubyte", 0x801, [4], [0, 1, 2, 0])

# .npy: x [3, 2] and y [3], in several dtypes, versions and layouts.
x = np.array([[0.5, 1.0], [2.0, -3.0], [4.25, 5.0]])
npy("x_f4.npy", x.astype("<f4"))
npy("x_f8_v2.npy", x.astype("<f8"), version=(2, 0))
npy("x_f4_be.npy", x.astype(">f4"))
npy("x_u1_3d.npy", np.array([[[1, 2]], [[3, 4]], [[5, 255]]], dtype="|u1"))
npy("x_fortran.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(3, 2) + 0.5))
npy("x_nan.npy", np.array([[0, 1], [2, np.nan], [4, 5]], dtype="<f4"))
npy("x_rows4.npy", np.zeros((4, 2), dtype="<f4"))
npy("y_i8.npy", np.array([0, 2, 1], dtype="<i8"))
npy("y_u1.npy", np.array([2, 2, 0], dtype="|u1"))
npy("y_f4.npy", np.array([0, 2, 1], dtype="<f4"))
npy("y_big.npy", np.array([0, 1, 7], dtype="<i4"))

# Text: 10 distinct characters (space, newline, d e h l o r t w).
with open(path("tiny.txt"), "wb") as f:
    f.write(b"hello world\nhold the door\n")
