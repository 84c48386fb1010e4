"""Example-level DP-SGD on LeNet-5, fedtrain beside Opacus, measured in one run on one core each: one
client of 6000 Fashion-MNIST images (IID), Poisson lots of expected size 64, per-example clip 1.0,
noise multiplier 1.0, SGD lr 0.05, one epoch (94 steps). Prints each side's examples per second
(images that went through a per-example gradient) and the ratio, and fedtrain's non-private
epoch (the same client, batches of 64) for the cost of privacy.

Usage: .venv/bin/python scripts/dpsgd_compare.py --fedtrain .build/release/fedtrain
"""
import json
import os
import subprocess
import tempfile
import time

from script_support import ArgumentParser, fail, positive_int

p = ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--fedtrain", required=True, help="the fedtrain executable")
p.add_argument("--repeats", type=positive_int, default=2, help="epochs timed per side, the best kept (default: %(default)s)")
arguments = p.parse_args()
if not os.access(arguments.fedtrain, os.X_OK):
    fail(f"{arguments.fedtrain} is not an executable (make build)")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from opacus import PrivacyEngine  # noqa: E402
from torch_lenet5 import LeNet5, load_fashion_mnist  # noqa: E402

torch.set_num_threads(1)
SAMPLES, BATCH, CLIP, NOISE, LR = 6000, 64, 1.0, 1.0, 0.05


def opacus_epoch():
    x, y = load_fashion_mnist("train", normalize=True)
    dataset = torch.utils.data.TensorDataset(x[:SAMPLES], y[:SAMPLES])
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH)
    model = LeNet5()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR)
    model, optimizer, loader = PrivacyEngine().make_private(module=model, optimizer=optimizer, data_loader=loader,
                                                            noise_multiplier=NOISE, max_grad_norm=CLIP, poisson_sampling=True)
    examples, start = 0, time.perf_counter()
    for images, labels in loader:
        optimizer.zero_grad(set_to_none=True)
        if len(labels):
            F.cross_entropy(model(images), labels).backward()
        optimizer.step()
        examples += len(labels)
    return examples / (time.perf_counter() - start)


def fedtrain_epoch(private=True):
    with tempfile.TemporaryDirectory() as out:
        # 10 IID clients of 6000: one is sampled and trains its epoch on one thread.
        dp = ["--dp", "dpsgd", "--clip", str(CLIP), "--noise-multiplier", str(NOISE)] if private else []
        subprocess.run([arguments.fedtrain, "simulate", "--clients", "10", "--fraction", "0.1", "--min-clients", "1", "--rounds", "1",
                        "--partition", "iid", *dp, "--batch-size", str(BATCH), "--lr", str(LR), "--threads", "1", "--out", f"{out}/run"],
                       check=True, stdout=subprocess.DEVNULL)
        with open(f"{out}/run/metrics.jsonl") as file:
            return json.loads(file.readline())["images_per_second"]


rows = []
for name, run in (("fedtrain", fedtrain_epoch), ("Opacus 1.6 + PyTorch", opacus_epoch),
                  ("fedtrain, non-private", lambda: fedtrain_epoch(private=False))):
    rates = [run() for _ in range(arguments.repeats)]
    rows.append((name, max(rates), rates))
print(f"DP-SGD, LeNet-5, one client of {SAMPLES} images, expected lot {BATCH}, clip {CLIP}, noise {NOISE}, one core each")
print("| engine | examples/s (best) | runs |")
print("|---|---|---|")
for name, best, rates in rows:
    print(f"| {name} | {best:.0f} | {', '.join(f'{r:.0f}' for r in rates)} |")
print(f"\nfedtrain / Opacus: {rows[0][1] / rows[1][1]:.2f}x")
print(f"fedtrain's DP-SGD step costs {rows[2][1] / rows[0][1]:.2f}x its non-private step")
