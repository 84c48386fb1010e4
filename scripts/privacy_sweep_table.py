"""Table and PNG of make privacy-sweep: test accuracy against the epsilon each run spent, central DP at
1000 and 100 clients and local DP at 100, each beside its non-private run, with the noise on the
aggregate per round against the largest possible clipped mean (the clip C), which is what decides
the accuracy. Writes the "## Utility" section of --into (replacing it, and everything after it) and
results/privacy/privacy.png (when matplotlib is installed).

Usage: python scripts/privacy_sweep_table.py results/privacy --into results/privacy.md
"""
import math
import os

from script_support import ArgumentParser, fail, read_json, require_directory, require_file

p = ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("root", metavar="DIR", help="the sweep's results, e.g. results/privacy")
p.add_argument("--into", required=True, help="the markdown file whose Utility section is rewritten")
arguments = p.parse_args()
root = require_directory(arguments.root, "make privacy-sweep writes it")
into = require_file(arguments.into, "scripts/privacy_reference.py writes its accountant table")
HEADING = "## Utility"


def analytic_gaussian_sigma(epsilon, delta, sensitivity):
    """Balle and Wang 2018's smallest σ for (ε, δ) (what fedtrain's local DP uses), by bisection."""
    phi = lambda x: 0.5 * math.erfc(-x / math.sqrt(2))  # noqa: E731
    def leaked(sigma):
        a, b = sensitivity / (2 * sigma), epsilon * sigma / sensitivity
        return phi(a - b) - math.exp(epsilon) * phi(-a - b)
    low, high = 1e-6 * sensitivity, 1e6 * sensitivity
    for _ in range(200):
        middle = math.sqrt(low * high)
        low, high = (low, middle) if leaked(middle) <= delta else (middle, high)
    return high


def flag(flags, name):
    return float(flags[flags.index(name) + 1]) if name in flags else None


rows, curves, baselines = [], {}, {}
sweep = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "experiments", "privacy-sweep.txt")
for line in open(require_file(sweep)):
    if not line.strip() or line.startswith("#"):
        continue
    clients, name, *flags = line.split()
    directory = os.path.join(root, clients, name)
    if not os.path.exists(os.path.join(directory, "summary.json")):
        fail(f"{directory}/summary.json does not exist (make privacy-sweep writes it)")
    summary = read_json(os.path.join(directory, "summary.json"), ("final_accuracy", "best_accuracy", "parameters"))
    n, rate, delta = int(clients), 0.1, summary.get("delta", 1e-5)
    expected, parameters = rate * n, summary["parameters"]
    clip = flag(flags, "--clip")
    final, best = 100 * summary["final_accuracy"], 100 * summary["best_accuracy"]
    if "--dp" not in flags:
        baselines[n] = final
        rows.append((n, "non-private", "", "", "", "", final, best))
        continue
    mode = flags[flags.index("--dp") + 1]
    spent = summary["epsilon"]
    if mode == "central":
        target = flag(flags, "--target-epsilon")
        z = summary["noise_multiplier"]
        noise = z * clip / expected * math.sqrt(parameters)
        rows.append((n, f"central, ε {target:g} for the run", spent, f"z = {z:.3f}", noise, noise / clip, final, best))
    else:
        per_round = flag(flags, "--local-epsilon")
        sigma = analytic_gaussian_sigma(per_round, delta, 2 * clip)
        noise = sigma * math.sqrt(parameters / expected)
        rows.append((n, f"local, ε {per_round:g} per round", spent, f"σ = {sigma:.4f}", noise, noise / clip, final, best))
    curves.setdefault(f"{mode} DP, {n} clients", []).append((spent, final))

lines = [HEADING, "",
         "Accuracy against ε on Fashion-MNIST (Dirichlet 0.5, LeNet-5, FedAvg, E=1, B=32, lr 0.05, clip 0.5, 100",
         "rounds, each client sampled with probability 0.1 per round, δ = 1e-5; experiments/privacy-{100,1000}.yaml",
         "and experiments/privacy-sweep.txt), one run per cell, seed 0, nothing tuned. Written by `make privacy-sweep`",
         "(`scripts/privacy_sweep_table.py`). ε spent is the whole run's, from `summary.json` (local DP: a client",
         "in every round, the better of basic and RDP composition). The noise column is the L2 norm of the noise",
         "on the aggregate per round: central zC/m·√P (m the expected clients, P the parameters), local",
         "σ·√(P/m) (each of m clients' noise, averaged); the clipped mean it is added to has norm at most C.",
         "",
         "| clients | DP | ε spent | noise | noise norm per round | noise / C | final accuracy | best | non-private final |",
         "|---|---|---|---|---|---|---|---|---|"]
for n, label, spent, scale, noise, ratio, final, best in rows:
    cells = [str(n), label, f"{spent:.3f}" if spent != "" else "-", scale or "-",
             f"{noise:.3f}" if noise != "" else "-", f"{ratio:.2f}" if ratio != "" else "-",
             f"{final:.2f}%", f"{best:.2f}%", f"{baselines.get(n, float('nan')):.2f}%"]
    lines.append("| " + " | ".join(cells) + " |")
lines.append("")

text = open(into).read()
head = text.split(HEADING)[0].rstrip("\n")
with open(into, "w") as file:
    file.write(head + "\n\n" + "\n".join(lines))
print("\n".join(lines))

try:
    import matplotlib
except ImportError:
    print("privacy-sweep: PNG skipped (make plot installs matplotlib into .venv)")
else:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axis = plt.subplots(figsize=(8, 5))
    colours = plt.get_cmap("tab10").colors
    for index, (label, points) in enumerate(sorted(curves.items())):
        points.sort()
        axis.plot([e for e, _ in points], [a for _, a in points], "o-", color=colours[index], label=label)
    for index, (n, accuracy) in enumerate(sorted(baselines.items())):
        axis.axhline(accuracy, linestyle="--", color=colours[len(curves) + index], label=f"non-private, {n} clients")
    axis.set_xscale("log")
    axis.set_xlabel("ε spent over the run (δ = 1e-5)")
    axis.set_ylabel("final test accuracy (%)")
    axis.set_title("Fashion-MNIST, Dirichlet 0.5, 100 rounds")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    png = os.path.join(root, "privacy.png")
    fig.savefig(png, dpi=120, bbox_inches="tight")
    print(png)
