"""fedtrain beside PyTorch on LeNet-5 / Fashion-MNIST training throughput, in one run.

Usage: python scripts/compare.py --fedtrain .build/release/fedtrain [--threads 2] [--batches 64 32 10] [--repeats 3]
(needs torch)

Both sides train one epoch of plain SGD (lr 0.05) over the 60k training images in a random order
with the last partial batch kept, timing the training loop only (the recipe of
scripts/torch_lenet5.py's train_epoch). Runs alternate between the two engines so machine noise hits both;
the table reports medians and their ratio.
"""
import json
import os
import statistics
import subprocess
import tempfile
import time

from script_support import (ArgumentParser, fail, positive_int, require_executable, require_fashion_mnist,
                            require_modules)


def torch_epoch(x, y, batch, seed):
    import torch
    import torch.nn.functional as F
    from torch_lenet5 import LeNet5

    torch.manual_seed(seed)
    model = LeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        idx = perm[i:i + batch]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return len(x) / (time.perf_counter() - start)


def fedtrain_epoch(binary, batch, threads, seed):
    with tempfile.TemporaryDirectory() as tmp:
        summary = os.path.join(tmp, "summary.json")
        command = [binary, "train", "--epochs", "1", "--batch-size", str(batch), "--lr", "0.05", "--momentum", "0",
                   "--threads", str(threads), "--seed", str(seed), "--summary", summary]
        try:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError as error:
            fail(f"{' '.join(command)} exited with status {error.returncode}", status=1)
        with open(summary) as f:
            return json.load(f)["images_per_second"]


def main():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fedtrain", required=True, help="the fedtrain executable, e.g. .build/release/fedtrain")
    p.add_argument("--threads", type=positive_int, default=os.cpu_count())
    p.add_argument("--batches", type=positive_int, nargs="+", default=[64, 32, 10])
    p.add_argument("--repeats", type=positive_int, default=3)
    args = p.parse_args()
    require_executable(args.fedtrain)
    require_fashion_mnist()
    require_modules("torch", hint="make compare installs it into .venv")

    import torch
    from torch_lenet5 import load_fashion_mnist

    torch.set_num_threads(args.threads)
    x, y = load_fashion_mnist("train")
    print(f"LeNet-5 training throughput, 1 epoch of SGD, {args.threads} threads, median of {args.repeats} "
          f"(PyTorch {torch.__version__})")
    print(f"{'B':>4} {'PyTorch img/s':>14} {'fedtrain img/s':>15} {'ratio':>6}")
    for batch in args.batches:
        ours, theirs = [], []
        for seed in range(args.repeats):
            theirs.append(torch_epoch(x, y, batch, seed))
            ours.append(fedtrain_epoch(args.fedtrain, batch, args.threads, seed))
        a, b = statistics.median(theirs), statistics.median(ours)
        print(f"{batch:>4} {a:>14.0f} {b:>15.0f} {b / a:>5.2f}x   "
              f"(PyTorch runs {', '.join(f'{v:.0f}' for v in theirs)}; fedtrain runs {', '.join(f'{v:.0f}' for v in ours)})",
              flush=True)


if __name__ == "__main__":
    main()
