"""fedtrain beside PyTorch on Fashion-MNIST training throughput, in one run, for LeNet-5 or any
model fedtrain can describe (the same nn.Sequential on the PyTorch side, scripts/torch_model.py).

Usage: python scripts/compare.py --fedtrain .build/release/fedtrain [--model lenet5|fedavg-cnn|FILE.yaml]
       [--threads 2] [--batches 64 32 10] [--repeats 3] [--limit N] [--peak-gflops G]
(needs torch)

Both sides train one epoch of plain SGD (lr 0.05) over the 60k training images (or the first --limit)
in a random order with the last partial batch kept, timing the training loop only (the recipe of
scripts/torch_lenet5.py's train_epoch). Runs alternate between the two engines so machine noise hits both;
the table reports medians and their ratio, and each engine's GFLOP/s from the model's multiply-adds
(forward, times 3 for forward and backward), as a fraction of --peak-gflops when given.
"""
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch_model
from script_support import (ArgumentParser, fail, positive_int, require_executable, require_fashion_mnist,
                            require_modules)


def forward_flops(model):
    """Floating-point operations of one image's forward pass (2 per multiply-add of the
    convolutions and dense layers)."""
    import torch

    flops = 0

    def count(module, inputs, output):
        nonlocal flops
        if isinstance(module, torch.nn.Conv2d):
            flops += 2 * output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, torch.nn.Linear):
            flops += 2 * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for h in hooks:
        h.remove()
    return flops


def torch_epoch(name, x, y, batch, seed):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    model = torch_model.model_for(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        idx = perm[i:i + batch]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return len(x) / (time.perf_counter() - start)


def fedtrain_epoch(binary, name, batch, threads, seed, limit):
    with tempfile.TemporaryDirectory() as tmp:
        summary = os.path.join(tmp, "summary.json")
        command = [binary, "train", "--model", name, "--epochs", "1", "--batch-size", str(batch), "--lr", "0.05", "--momentum", "0",
                   "--threads", str(threads), "--seed", str(seed), "--summary", summary, "--train-limit", str(limit)]
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
    p.add_argument("--model", default="lenet5", help="lenet5, fedavg-cnn or a model description YAML (default: lenet5)")
    p.add_argument("--limit", type=positive_int, default=60000, help="train on the first N images (default: all 60000)")
    p.add_argument("--peak-gflops", type=float, help="the machine's peak GFLOP/s, to report the fraction reached")
    args = p.parse_args()
    if args.model not in ("lenet5", "fedavg-cnn") and not os.path.isfile(args.model):
        fail(f"--model {args.model}: neither lenet5, fedavg-cnn nor a file")
    require_executable(args.fedtrain)
    require_fashion_mnist()
    require_modules("torch", hint="make compare installs it into .venv")

    import torch
    from torch_lenet5 import load_fashion_mnist

    torch.set_num_threads(args.threads)
    x, y = load_fashion_mnist("train")
    x, y = x[:args.limit], y[:args.limit]
    flops = 3 * forward_flops(torch_model.model_for(args.model))
    print(f"{args.model} training throughput, 1 epoch of SGD over {len(x)} images, {args.threads} threads, median of "
          f"{args.repeats} (PyTorch {torch.__version__}); {flops / 1e6:.1f} MFLOP per image (3 x forward)")
    peak = f" of {args.peak_gflops:.0f}" if args.peak_gflops else ""
    print(f"{'B':>4} {'PyTorch img/s':>14} {'fedtrain img/s':>15} {'ratio':>6}   GFLOP/s{peak} (PyTorch, fedtrain)")
    for batch in args.batches:
        ours, theirs = [], []
        for seed in range(args.repeats):
            theirs.append(torch_epoch(args.model, x, y, batch, seed))
            ours.append(fedtrain_epoch(args.fedtrain, args.model, batch, args.threads, seed, len(x)))
        a, b = statistics.median(theirs), statistics.median(ours)
        rates = [v * flops / 1e9 for v in (a, b)]
        shares = f" = {100 * rates[0] / args.peak_gflops:.0f}%, {100 * rates[1] / args.peak_gflops:.0f}%" if args.peak_gflops else ""
        print(f"{batch:>4} {a:>14.0f} {b:>15.0f} {b / a:>5.2f}x   {rates[0]:.1f}, {rates[1]:.1f}{shares}   "
              f"(PyTorch runs {', '.join(f'{v:.0f}' for v in theirs)}; fedtrain runs {', '.join(f'{v:.0f}' for v in ours)})",
              flush=True)


if __name__ == "__main__":
    main()
