"""PNG charts for simulation runs: accuracy vs round and accuracy vs cumulative MB uploaded.

Usage: python scripts/plot.py results/a [results/b ...]   (needs matplotlib)
Writes accuracy.png into the first directory when given one run, else results/comparison-*.png,
and prints the path of the PNG it wrote. The MB axis is linear, unless the runs' uploads differ more
than tenfold (compressed beside dense runs): then it is linear up to the smallest upload and log above,
so no run is squeezed against 0. Each run directory needs the metrics.jsonl that
`fedtrain simulate` writes (rows with round, bytes_up and, on evaluated rounds, test_accuracy).
"""
import math
import numbers
import os

from script_support import ArgumentParser, fail, read_json_lines, require_directory, require_modules

SPREAD = 10  # the MB axis stays linear while the largest run's upload is at most this many times the smallest's


def load(run):
    """(round, cumulative MB uploaded, test accuracy %) of every evaluated round of `run`."""
    require_directory(run, "make experiment NAME=... writes results/NAME")
    metrics = os.path.join(run, "metrics.jsonl")
    rows = read_json_lines(metrics, keys=("round", "bytes_up"))
    if not rows:
        fail(f"{metrics} has no rows")
    points, total = [], 0
    for number, r in enumerate(rows, 1):
        if not isinstance(r["bytes_up"], numbers.Real) or (
                r.get("test_accuracy") is not None and not isinstance(r["test_accuracy"], numbers.Real)):
            fail(f"{metrics}, line {number}: bytes_up and test_accuracy must be numbers")
        total += r["bytes_up"]
        if r.get("test_accuracy") is not None:
            points.append((r["round"], total / 1e6, 100 * r["test_accuracy"]))
    return points


def main():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="a results directory, e.g. results/default")
    runs = p.parse_args().runs
    curves = [(run, load(run)) for run in runs]
    if not any(points for _, points in curves):
        fail(f"no row of {', '.join(os.path.join(run, 'metrics.jsonl') for run in runs)} has a test_accuracy")
    require_modules("matplotlib", hint="make plot installs it into .venv")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_round, by_bytes) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run, points in curves:
        label = os.path.basename(os.path.normpath(run))
        by_round.plot([q[0] for q in points], [q[2] for q in points], marker=".", label=label)
        by_bytes.plot([q[1] for q in points], [q[2] for q in points], marker=".", label=label)
    by_round.set(xlabel="round", ylabel="test accuracy (%)", title="accuracy vs round")
    by_bytes.set(ylabel="test accuracy (%)", title="accuracy vs upload")
    # MB axis: linear from 0. When the runs' uploads differ more than SPREAD-fold (a compressed run beside
    # a dense one), a linear axis squeezes the small run against 0, so the axis turns symlog: linear up to
    # the smallest upload plotted, logarithmic above it, so every run keeps its own stretch of the axis.
    totals = [points[-1][1] for _, points in curves if points]
    smallest = min((q[1] for _, points in curves for q in points if q[1] > 0), default=0)
    if smallest > 0 and max(totals) > SPREAD * min(totals):
        by_bytes.set_xscale("symlog", linthresh=smallest)
        # Ticks at 0 and at the powers of ten above the linear part (ones inside it would overlap 0's).
        first, last = math.floor(math.log10(smallest)) + 1, math.ceil(math.log10(max(totals)))
        by_bytes.set_xticks([0] + [10.0 ** k for k in range(first, last + 1)])
        by_bytes.set_xlabel(f"cumulative MB uploaded (linear up to {smallest:.3g}, log above)")
    else:
        by_bytes.set_xlabel("cumulative MB uploaded")
    by_bytes.set_xlim(left=0)
    for axis in (by_round, by_bytes):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    target = os.path.join(runs[0], "accuracy.png") if len(runs) == 1 else os.path.join(
        os.path.dirname(os.path.normpath(runs[0])),
        "comparison-" + "-".join(os.path.basename(os.path.normpath(r)) for r in runs)[:80] + ".png")
    try:
        fig.savefig(target, dpi=120)
    except OSError as error:
        fail(f"cannot write {target}: {error.strerror or error}")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
