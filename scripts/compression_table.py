"""results/compression.md from make compression-sweep's runs (standard library only).

Usage: python3 scripts/compression_table.py results/compression > results/compression.md
Per partition, every run of experiments/compression-sweep.txt beside the dense baseline (fp32):
final and best accuracy, MB up and down (real message bytes), ratios vs dense, and the round,
upload and download at which a run first reaches the dense run's final accuracy minus 0.5 points.
"""
import os

from script_support import REPOSITORY, ArgumentParser, read_json, read_json_lines, require_directory, require_file

p = ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("root", metavar="DIR", help="the sweep's results, e.g. results/compression")
root = require_directory(p.parse_args().root, "make compression-sweep writes it")
SWEEP = require_file(os.path.join(os.path.relpath(REPOSITORY), "experiments", "compression-sweep.txt"))
sweep = [line.split(None, 1) for line in open(SWEEP) if line.strip() and not line.startswith("#")]
names = [entry[0] for entry in sweep]
flags = {entry[0]: (entry[1].strip() if len(entry) > 1 else "(dense fp32)") for entry in sweep}


def load(run):
    summary = read_json(os.path.join(run, "summary.json"), keys=(
        "final_accuracy", "best_accuracy", "bytes_up", "bytes_down", "compression_up", "compression_down"))
    rows = read_json_lines(os.path.join(run, "metrics.jsonl"), keys=("round", "bytes_up", "bytes_down"))
    return summary, rows


print("# Compression sweep\n")
print("Written by `make compression-sweep` (scripts/compression_table.py). Fashion-MNIST, LeNet-5, 10 clients, all")
print("sampled, FedAvg, E=1, B=32, lr 0.05, 30 rounds (40 or 80 for runs named -40r, -80r), seed 0. Bytes are real `UpdateMessage` lengths (header,")
print("codec payload, CRC). *Up/down ratio* = the same run's messages in fp32 over their real size. *Bar* = dense")
print("fp32 FedAvg's final accuracy minus 0.5 points; *MB up to bar* = MB uploaded until the first round at or above")
print("it; *dense/up to bar* = dense FedAvg's whole upload (30 rounds) over that; the same for the download.\n")
for partition in sorted(os.listdir(root)):
    directory = os.path.join(root, partition)
    if not os.path.isdir(directory) or not os.path.exists(os.path.join(directory, "fp32", "summary.json")):
        continue
    dense, _ = load(os.path.join(directory, "fp32"))
    bar = dense["final_accuracy"] - 0.005
    print(f"## {partition}\n")
    print(f"Dense final accuracy {100 * dense['final_accuracy']:.2f}%, bar {100 * bar:.2f}%, "
          f"dense upload {dense['bytes_up'] / 1e6:.2f} MB, download {dense['bytes_down'] / 1e6:.2f} MB.\n")
    print("| run | flags | final % | best % | MB up | MB down | up ratio | down ratio | round at bar | MB up to bar "
          "| dense/up to bar | MB down to bar | dense/down to bar |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        run = os.path.join(directory, name)
        if not os.path.exists(os.path.join(run, "summary.json")):
            print(f"| {name} | `{flags[name]}` | not yet measured | | | | | | | | | | |")
            continue
        summary, rows = load(run)
        uploaded, downloaded, reached = 0, 0, None
        for row in rows:
            uploaded += row["bytes_up"]
            downloaded += row["bytes_down"]
            if row.get("test_accuracy") is not None and row["test_accuracy"] >= bar:
                reached = (row["round"], uploaded, downloaded)
                break
        at_bar = (f"{reached[0]} | {reached[1] / 1e6:.3f} | {dense['bytes_up'] / reached[1]:.0f}x | "
                  f"{reached[2] / 1e6:.3f} | {dense['bytes_down'] / reached[2]:.0f}x") if reached else "not reached | | | | "
        print(f"| {name} | `{flags[name]}` | {100 * summary['final_accuracy']:.2f} | {100 * summary['best_accuracy']:.2f} | "
              f"{summary['bytes_up'] / 1e6:.3f} | {summary['bytes_down'] / 1e6:.3f} | {summary['compression_up']:.1f}x | "
              f"{summary['compression_down']:.1f}x | {at_bar} |")
    print()
