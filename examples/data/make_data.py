#!/usr/bin/env python3
"""make_data.py: the small data sets the examples ship, regenerated exactly.

    python3 examples/data/make_data.py     # rewrites the files below

iris_setosa.csv  Iris with a 0/1 column "setosa" (setosa against the rest),
                 for the logistic-regression examples.
tokens.csv       a toy part-of-speech task for token_tagger.nn: sentences of
                 8 token ids over a vocabulary of 24 and a tag per position
                 (0 determiner, 1 noun, 2 verb). Tokens 0-5 are determiners,
                 6-11 nouns, 12-17 verbs, and 18-23 are ambiguous: a noun
                 after a determiner, a verb otherwise, so the tagger must
                 look at the previous token (column p<t>, the id before
                 position t, 24 at the start).
reviews.csv      sequence classification for sentiment.nn: 12 token ids over
                 a vocabulary of 30 (0-9 positive words, 10-19 negative,
                 20-29 neutral) and label 1 when positive words outnumber
                 negative ones (ties are not generated).
"""
import csv
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))


def iris_setosa():
    with open(os.path.join(HERE, "iris.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(HERE, "iris_setosa.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        w.writerow(cols + ["setosa"])
        for r in rows:
            w.writerow([r[c] for c in cols] + [1 if r["species"] == "Iris-setosa" else 0])


def tokens(n=4000, T=8, seed=1):
    rng = random.Random(seed)
    det, noun, verb, amb = range(0, 6), range(6, 12), range(12, 18), range(18, 24)
    with open(os.path.join(HERE, "tokens.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([f"t{i}" for i in range(T)] + [f"p{i}" for i in range(T)] +
                   [f"tag{i}" for i in range(T)])
        for _ in range(n):
            ids, tags = [], []
            for t in range(T):
                prev_det = t > 0 and tags[-1] == 0
                k = rng.random()
                if k < 0.3:
                    tok = rng.choice(det)
                elif k < 0.5:
                    tok = rng.choice(noun)
                elif k < 0.7:
                    tok = rng.choice(verb)
                else:
                    tok = rng.choice(amb)
                if tok < 6:
                    tag = 0
                elif tok < 12:
                    tag = 1
                elif tok < 18:
                    tag = 2
                else:
                    tag = 1 if prev_det else 2
                ids.append(tok)
                tags.append(tag)
            prev = [24] + ids[:-1]
            w.writerow(ids + prev + tags)


def reviews(n=3000, T=12, seed=2):
    rng = random.Random(seed)
    with open(os.path.join(HERE, "reviews.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([f"w{i}" for i in range(T)] + ["positive"])
        made = 0
        while made < n:
            ids = [rng.randrange(30) for _ in range(T)]
            pos = sum(1 for t in ids if t < 10)
            neg = sum(1 for t in ids if 10 <= t < 20)
            if pos == neg:
                continue
            w.writerow(ids + [1 if pos > neg else 0])
            made += 1


if __name__ == "__main__":
    iris_setosa()
    tokens()
    reviews()
