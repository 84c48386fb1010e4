"""One FedAvg round (10 IID clients x 6000 Fashion-MNIST images, E=1, B=32, lr 0.05) on this
machine: fedtrain beside the reference scripts in ../shared/peers, in one run.

Usage: .venv/bin/python scripts/fedavg_compare.py --fedtrain .build/release/fedtrain [--peers ../shared/peers]
- fedtrain: `simulate --config experiments/fedavg-iid-round.yaml --eval-every 1000`, median s/round over
  rounds 1-4 (round 5 includes the final evaluation);
- plain PyTorch (fedavg_torch.py --threads 2 --rounds 3), median s/round as it prints;
- Flower 1.42 + PyTorch (flower_sim.py --cpus-per-client 1 --rounds 3: 2 Ray actors x 1 thread, its best
  variant), median of its steady rounds as it prints; skipped with a message if flwr is not installed.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile


def fedtrain_round(binary):
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([binary, "simulate", "--config", "experiments/fedavg-iid-round.yaml", "--eval-every", "1000",
                        "--out", out], check=True, stdout=subprocess.DEVNULL)
        rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    return statistics.median(r["seconds"] for r in rows[:-1])


def peer_round(peers, script, *arguments):
    environment = dict(os.environ, PYTHONPATH=peers)
    result = subprocess.run([sys.executable, os.path.join(peers, script), *arguments], cwd=peers, env=environment,
                            capture_output=True, text=True)
    match = re.search(r"MEDIAN .*?: ([0-9.]+) s/round", result.stdout)
    if not match:
        raise RuntimeError(f"{script} printed no MEDIAN line:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return float(match.group(1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--fedtrain", required=True)
    p.add_argument("--peers", default="../shared/peers")
    args = p.parse_args()
    peers = os.path.abspath(args.peers)
    ours = fedtrain_round(args.fedtrain)
    print(f"fedtrain:          {ours:.2f} s/round", flush=True)
    torch_s = peer_round(peers, "fedavg_torch.py", "--threads", "2", "--rounds", "3")
    print(f"PyTorch loop:      {torch_s:.2f} s/round  -> fedtrain {torch_s / ours:.2f}x faster", flush=True)
    try:
        import flwr  # noqa: F401
    except ImportError:
        print("Flower:            skipped (pip install 'flwr[simulation]' into this Python to include it)")
        return
    flower_s = peer_round(peers, "flower_sim.py", "--cpus-per-client", "1", "--rounds", "3")
    print(f"Flower + PyTorch:  {flower_s:.2f} s/round  -> fedtrain {flower_s / ours:.2f}x faster", flush=True)
    again = fedtrain_round(args.fedtrain)
    print(f"fedtrain again:    {again:.2f} s/round (ratios use the first run)")


if __name__ == "__main__":
    main()
