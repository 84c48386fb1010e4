"""Writes the robustness table (markdown) from results/robustness/PARTITION/ATTACK/DEFENSE/seed-K runs, and a
heatmap PNG of it when matplotlib is importable.

Usage: python3 scripts/robustness_table.py results/robustness [experiments] > results/robustness.md
Each cell is the final test accuracy (%) averaged over the seeds that finished, with the seed count when it is
more than one; backdoor rows add the final attack success rate (triggered non-target test images classified as the
target). Cells not run are "-". Standard library only, except the optional PNG.
"""
import json
import os
import statistics

from script_support import REPOSITORY, ArgumentParser, read_json, require_directory

p = ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("root", metavar="RESULTS", help="the results/robustness folder")
p.add_argument("experiments", nargs="?", default=os.path.relpath(os.path.join(REPOSITORY, "experiments")),
               help="the folder of robustness-attacks.txt and robustness-defenses.txt (default: %(default)s)")
arguments = p.parse_args()
root = require_directory(arguments.root)
experiments = require_directory(arguments.experiments)


def names(path):
    with open(path) as file:
        return [line.split()[0] for line in file if line.strip() and not line.startswith("#")]


attacks = names(os.path.join(experiments, "robustness-attacks.txt"))
defenses = names(os.path.join(experiments, "robustness-defenses.txt"))


def cell(partition, attack, defense):
    """(mean accuracy %, seeds, mean backdoor success % or None, per-seed accuracies) of the finished seeds."""
    directory = os.path.join(root, partition, attack, defense)
    if not os.path.isdir(directory):
        return None
    accuracies, successes = [], []
    for seed in sorted(os.listdir(directory)):
        summary = os.path.join(directory, seed, "summary.json")
        if not seed.startswith("seed-") or not os.path.exists(summary):
            continue
        accuracies.append(100 * (read_json(summary, keys=("final_accuracy",))["final_accuracy"] or 0))
        with open(os.path.join(directory, seed, "metrics.jsonl")) as file:
            last = json.loads(file.read().splitlines()[-1])
        if "backdoor_success" in last:
            successes.append(100 * last["backdoor_success"])
    if not accuracies:
        return None
    return statistics.mean(accuracies), len(accuracies), statistics.mean(successes) if successes else None, accuracies


partitions = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
print("# Robustness: final test accuracy (%), attack x defense\n")
print("Fashion-MNIST, LeNet-5, 50 clients all sampled, 30 rounds, E=1, B=32, lr 0.05; 20% attackers (backdoor-10: 10%),")
print("f = 10 for the rules that take it, clipping radius and norm bound 0.5. `(n)`: mean over n seeds; `ASR`: backdoor")
print("success rate on triggered test images whose label is not the target. `-`: not run. Made by `make robustness-bench`.\n")
grid = {}
for partition in partitions:
    used = [d for d in defenses if any(cell(partition, a, d) for a in attacks)]
    print(f"## {partition}\n")
    print("| attack | " + " | ".join(used) + " |")
    print("|---|" + "---|" * len(used))
    for attack in attacks:
        cells = []
        for defense in used:
            result = cell(partition, attack, defense)
            grid[(partition, attack, defense)] = result[0] if result else None
            if result is None:
                cells.append("-")
                continue
            accuracy, seeds, success, _ = result
            text = f"{accuracy:.2f}" + (f" ({seeds})" if seeds > 1 else "")
            if success is not None:
                text += f", ASR {success:.1f}"
            cells.append(text)
        if any(c != "-" for c in cells):
            print(f"| {attack} | " + " | ".join(cells) + " |")
    print()
    seeded = [(a, d, cell(partition, a, d)) for a in attacks for d in used]
    seeded = [(a, d, r) for a, d, r in seeded if r and r[1] > 1]
    if seeded:
        print("Per seed (cells with more than one):\n")
        print("| attack | defense | accuracies | mean | stdev |")
        print("|---|---|---|---|---|")
        for a, d, r in seeded:
            print(f"| {a} | {d} | {', '.join(f'{x:.2f}' for x in r[3])} | {r[0]:.2f} | {statistics.stdev(r[3]):.2f} |")
        print()

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    plt = None
if plt is not None:
    for partition in partitions:
        rows = [a for a in attacks if any(grid.get((partition, a, d)) is not None for d in defenses)]
        columns = [d for d in defenses if any(grid.get((partition, a, d)) is not None for a in attacks)]
        if not rows or not columns:
            continue
        values = [[grid.get((partition, a, d)) for d in columns] for a in rows]
        masked = [[float("nan") if v is None else v for v in row] for row in values]
        figure, axes = plt.subplots(figsize=(1.1 * len(columns) + 2, 0.5 * len(rows) + 1.5))
        image = axes.imshow(masked, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        axes.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
        axes.set_yticks(range(len(rows)), rows)
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if value is not None:
                    axes.text(j, i, f"{value:.0f}", ha="center", va="center", color="white" if value < 60 else "black", fontsize=8)
        figure.colorbar(image, label="final test accuracy (%)")
        axes.set_title(f"Robustness, {partition}: attack x defense")
        figure.tight_layout()
        figure.savefig(os.path.join(root, f"robustness-{partition}.png"), dpi=120)
