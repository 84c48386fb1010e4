"""PNG per partition of make compression-sweep: test accuracy vs cumulative MB uploaded (log scale),
one curve per codec. Usage: python scripts/compression_plot.py results/compression  (needs matplotlib)
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

root = sys.argv[1]
for partition in sorted(os.listdir(root)):
    directory = os.path.join(root, partition)
    if not os.path.isdir(directory):
        continue
    fig, axis = plt.subplots(figsize=(10, 6))
    # 18 curves: 20 colours and a line style per group of them, so no two curves look alike.
    colours, styles = plt.get_cmap("tab20").colors, ["-", "--", ":"]
    for index, name in enumerate(sorted(os.listdir(directory))):
        metrics = os.path.join(directory, name, "metrics.jsonl")
        if not os.path.exists(metrics):
            continue
        total, xs, ys = 0, [], []
        for line in open(metrics):
            row = json.loads(line)
            total += row["bytes_up"]
            if row.get("test_accuracy") is not None:
                xs.append(total / 1e6)
                ys.append(100 * row["test_accuracy"])
        axis.plot(xs, ys, marker=".", markersize=3, color="black" if name == "fp32" else colours[index % 20],
                  linestyle=styles[index // 7 % 3], linewidth=2.4 if name == "fp32" else 1.3, label=name)
    dense = os.path.join(directory, "fp32", "summary.json")
    if os.path.exists(dense):
        bar = 100 * json.load(open(dense))["final_accuracy"] - 0.5
        axis.axhline(bar, color="grey", linewidth=0.8, linestyle="--", label=f"bar: dense final - 0.5 ({bar:.2f}%)")
    axis.set(xscale="log", xlabel="cumulative MB uploaded (log)", ylabel="test accuracy (%)",
             title=f"accuracy vs upload, {partition}")
    axis.set_ylim(bottom=40)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    target = os.path.join(root, f"{partition}.png")
    fig.savefig(target, dpi=120)
    print(f"wrote {target}")
