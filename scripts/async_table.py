"""Writes the asynchronous-FL table (markdown) from results/async/MODE/seed-K runs, and a PNG of test accuracy
against simulated time when matplotlib is importable.

Usage: python3 scripts/async_table.py results/async [TARGET] > results/async.md
For every mode of experiments/async-modes.txt: the simulated seconds until the test accuracy first reaches TARGET
(default 0.85) and the client trips until then (a trip: one task sent and its client's training, replied or not),
per seed and as the mean over the seeds that reached it, plus the final and best accuracy. Standard library only,
except the optional PNG.
"""
import json
import os
import statistics

from script_support import REPOSITORY, ArgumentParser, require_directory

p = ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("root", metavar="RESULTS", help="the results/async folder")
p.add_argument("target", nargs="?", type=float, default=0.85, help="the test accuracy to reach (default: %(default)s)")
arguments = p.parse_args()
root = require_directory(arguments.root)
target = arguments.target

with open(os.path.join(REPOSITORY, "experiments", "async-modes.txt")) as file:
    modes = [(line.split()[0], " ".join(line.split()[1:])) for line in file if line.strip() and not line.startswith("#")]


def trips(row):
    """Client trips that ended in this row: the asynchronous `trips`, or every client a synchronous round sampled."""
    return row["trips"] if "trips" in row else row["clients"] + row["failures"] + row["rejected"]


def run(directory):
    """(seconds to target or None, trips to target or None, final accuracy, best accuracy, [(time, accuracy)])."""
    with open(os.path.join(directory, "metrics.jsonl")) as file:
        rows = [json.loads(line) for line in file if line.strip()]
    curve, total, reached = [], 0, (None, None)
    for row in rows:
        total += trips(row)
        if "test_accuracy" in row:
            curve.append((row["simulated_time"], row["test_accuracy"]))
            if reached[0] is None and row["test_accuracy"] >= target:
                reached = (row["simulated_time"], total)
    accuracies = [a for _, a in curve]
    return reached[0], reached[1], accuracies[-1], max(accuracies), curve


results = {}
for mode, _ in modes:
    directory = os.path.join(root, mode)
    if not os.path.isdir(directory):
        continue
    seeds = sorted(s for s in os.listdir(directory) if s.startswith("seed-") and os.path.exists(os.path.join(directory, s, "summary.json")))
    if seeds:
        results[mode] = {seed: run(os.path.join(directory, seed)) for seed in seeds}


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def number(value, digits=0):
    return "-" if value is None else f"{value:.{digits}f}"


print(f"# Asynchronous FL: simulated time and client trips to {100 * target:.0f}% test accuracy\n")
print("Fashion-MNIST, LeNet-5, 100 clients, Dirichlet 0.5, E=1, B=32, lr 0.05; simulated clock with log-normal client")
print("speeds (sigma 0.5 around 1 ms a sample), 20% of clients 5x slower, log-normal links around 1 MB/s")
print("(`experiments/async-bench.yaml`, modes in `experiments/async-modes.txt`). Seconds are simulated; trips count every")
print("task sent. Means are over the seeds that reached the target (`n/m`). Made by `make async-bench`.\n")
print("| mode | flags | reached | seconds to target (mean) | per seed | trips to target (mean) | final acc. | best acc. |")
print("|---|---|---|---|---|---|---|---|")
baseline = None
for mode, flags in modes:
    if mode not in results:
        continue
    runs = results[mode]
    seconds = [r[0] for r in runs.values()]
    reached = sum(s is not None for s in seconds)
    average = mean(seconds)
    if mode == "sync":
        baseline = average
    print(f"| {mode} | `{flags}` | {reached}/{len(runs)} | {number(average, 1)} | {', '.join(number(s, 1) for s in seconds)} | "
          f"{number(mean([r[1] for r in runs.values()]))} | {100 * mean([r[2] for r in runs.values()]):.2f} | "
          f"{100 * mean([r[3] for r in runs.values()]):.2f} |")
if baseline:
    print("\nSpeed-up over synchronous FedAvg without a deadline (its mean seconds over the mode's):\n")
    for mode, _ in modes:
        average = mean([r[0] for r in results.get(mode, {}).values()])
        if average and mode != "sync":
            print(f"- {mode}: {baseline / average:.2f}x")

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is not None and results:
    figure, axes = plt.subplots(figsize=(8, 5))
    for mode, runs in results.items():
        first = sorted(runs)[0]
        times, accuracies = zip(*runs[first][4])
        axes.plot(times, [100 * a for a in accuracies], label=f"{mode} ({first})", linewidth=1)
    axes.axhline(100 * target, color="gray", linestyle=":", linewidth=1)
    axes.set_xlabel("simulated seconds")
    axes.set_ylabel("test accuracy (%)")
    axes.set_ylim(50, 92)
    axes.legend(fontsize=8)
    axes.set_title("Fashion-MNIST, 100 clients, Dirichlet 0.5, heavy-tailed client speeds")
    figure.tight_layout()
    figure.savefig(os.path.join(root, "async.png"), dpi=120)
