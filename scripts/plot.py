"""PNG charts for simulation runs: accuracy vs round and accuracy vs cumulative MB uploaded.

Usage: python scripts/plot.py results/a [results/b ...]   (needs matplotlib)
Writes accuracy.png into the first directory when given one run, else results/comparison-*.png.
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

runs = sys.argv[1:]
fig, (by_round, by_bytes) = plt.subplots(1, 2, figsize=(12, 4.5))
for run in runs:
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    cumulative, total = [], 0
    for r in rows:
        total += r["bytes_up"]
        cumulative.append(total / 1e6)
    points = [(r["round"], mb, 100 * r["test_accuracy"]) for r, mb in zip(rows, cumulative) if r.get("test_accuracy") is not None]
    label = os.path.basename(os.path.normpath(run))
    by_round.plot([p[0] for p in points], [p[2] for p in points], marker=".", label=label)
    by_bytes.plot([p[1] for p in points], [p[2] for p in points], marker=".", label=label)
by_round.set(xlabel="round", ylabel="test accuracy (%)", title="accuracy vs round")
by_bytes.set(xlabel="cumulative MB uploaded", ylabel="test accuracy (%)", title="accuracy vs upload")
for axis in (by_round, by_bytes):
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
fig.tight_layout()
target = os.path.join(runs[0], "accuracy.png") if len(runs) == 1 else os.path.join(
    os.path.dirname(os.path.normpath(runs[0])), "comparison-" + "-".join(os.path.basename(os.path.normpath(r)) for r in runs)[:80] + ".png")
fig.savefig(target, dpi=120)
print(f"wrote {target}")
