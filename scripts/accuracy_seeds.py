"""Final test accuracy of centralized LeNet-5 on Fashion-MNIST over several seeds, fedtrain beside
PyTorch with the same recipe (default: issue 2's, 10 epochs, B=64, lr 0.02, momentum 0.9, normalized
inputs, last partial batch kept, reshuffled every epoch). Writes a markdown table to stdout.

The final-epoch accuracy of one run moves by tenths of a point with the seed, so one seed cannot
tell two engines apart; the means over many seeds can, to within their standard errors.

Usage: python scripts/accuracy_seeds.py --fedtrain .build/release/fedtrain [--seeds 0 1 2 ...]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

import torch
import torch.nn.functional as F
from torch_lenet5 import LeNet5, load_fashion_mnist


def torch_accuracy(data, seed, args):
    """PyTorch: the seed drives both the initialization and the shuffling generator."""
    (x, y), (x_test, y_test) = data
    torch.manual_seed(seed)
    model = LeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    shuffle = torch.Generator().manual_seed(seed)
    for _ in range(args.epochs):
        perm = torch.randperm(len(x), generator=shuffle)
        for i in range(0, len(x), args.batch_size):
            idx = perm[i:i + args.batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        correct = sum((model(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum().item()
                      for i in range(0, len(x_test), 1000))
    return 100 * correct / len(x_test)


def fedtrain_accuracy(seed, args):
    with tempfile.TemporaryDirectory() as tmp:
        summary = os.path.join(tmp, "summary.json")
        subprocess.run([args.fedtrain, "train", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                        "--lr", str(args.lr), "--momentum", str(args.momentum), "--threads", str(args.threads),
                        "--seed", str(seed), "--summary", summary], check=True, stdout=subprocess.DEVNULL)
        with open(summary) as f:
            return 100 * json.load(f)["test_accuracy"]


def describe(values):
    """Mean, sample standard deviation and standard error of the mean."""
    mean, std = statistics.mean(values), statistics.stdev(values)
    return mean, std, std / len(values) ** 0.5


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--fedtrain", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    args = p.parse_args()
    if len(args.seeds) < 2:
        p.error("--seeds needs at least two seeds")
    torch.set_num_threads(args.threads)
    data = (load_fashion_mnist("train", normalize=True), load_fashion_mnist("t10k", normalize=True))

    print(f"# Centralized LeNet-5, Fashion-MNIST: final test accuracy (%) over {len(args.seeds)} seeds\n")
    print(f"{args.epochs} epochs, B={args.batch_size}, lr {args.lr}, momentum {args.momentum}, normalized inputs; "
          f"PyTorch {torch.__version__}, {args.threads} threads. `make accuracy-seeds`.\n")
    print("| seed | fedtrain | PyTorch |")
    print("|---|---|---|")
    ours, theirs = [], []
    for seed in args.seeds:
        ours.append(fedtrain_accuracy(seed, args))
        theirs.append(torch_accuracy(data, seed, args))
        print(f"| {seed} | {ours[-1]:.2f} | {theirs[-1]:.2f} |", flush=True)
    (a, sa, ea), (b, sb, eb) = describe(ours), describe(theirs)
    print(f"| mean ± std (standard error) | {a:.2f} ± {sa:.2f} ({ea:.2f}) | {b:.2f} ± {sb:.2f} ({eb:.2f}) |")
    print(f"\nfedtrain - PyTorch: {a - b:+.2f} points, standard error {(ea ** 2 + eb ** 2) ** 0.5:.2f}.")


if __name__ == "__main__":
    main()
