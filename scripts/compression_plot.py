"""PNG per partition of make compression-sweep: test accuracy vs cumulative MB uploaded (log scale),
one curve per codec. Usage: python scripts/compression_plot.py results/compression  (needs matplotlib)
Prints the path of every PNG it writes.
"""
import os

from script_support import ArgumentParser, fail, read_json, read_json_lines, require_directory, require_modules

p = ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("root", metavar="DIR", help="the sweep's results, e.g. results/compression")
root = require_directory(p.parse_args().root, "make compression-sweep writes it")
if not any(os.path.isdir(os.path.join(root, partition)) for partition in os.listdir(root)):
    fail(f"{root} holds no partition folders (make compression-sweep writes them)")
require_modules("matplotlib", hint="make plot installs it into .venv")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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
        for row in read_json_lines(metrics, keys=("bytes_up",)):
            total += row["bytes_up"]
            if row.get("test_accuracy") is not None:
                xs.append(total / 1e6)
                ys.append(100 * row["test_accuracy"])
        axis.plot(xs, ys, marker=".", markersize=3, color="black" if name == "fp32" else colours[index % 20],
                  linestyle=styles[index // 7 % 3], linewidth=2.4 if name == "fp32" else 1.3, label=name)
    dense = os.path.join(directory, "fp32", "summary.json")
    if os.path.exists(dense):
        bar = 100 * read_json(dense, keys=("final_accuracy",))["final_accuracy"] - 0.5
        axis.axhline(bar, color="grey", linewidth=0.8, linestyle="--", label=f"bar: dense final - 0.5 ({bar:.2f}%)")
    axis.set(xscale="log", xlabel="cumulative MB uploaded (log)", ylabel="test accuracy (%)",
             title=f"accuracy vs upload, {partition}")
    axis.set_ylim(bottom=40)
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    target = os.path.join(root, f"{partition}.png")
    try:
        fig.savefig(target, dpi=120)
    except OSError as error:
        fail(f"cannot write {target}: {error.strerror or error}")
    print(f"wrote {target}")
