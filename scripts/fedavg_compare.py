"""One FedAvg round (10 IID clients x 6000 Fashion-MNIST images, E=1, B=32, lr 0.05) on this
machine: fedtrain beside the PyTorch reference scripts in scripts/ (fedavg_torch.py, flower_sim.py),
in one run.

Usage: .venv/bin/python scripts/fedavg_compare.py --fedtrain .build/release/fedtrain [--peers DIR]
- fedtrain: `simulate --config experiments/fedavg-iid-round.yaml --eval-every 1000`, median s/round over
  rounds 1-4 (round 5 includes the final evaluation);
- plain PyTorch (fedavg_torch.py --threads 2 --rounds 3), median s/round as it prints;
- Flower 1.42 + PyTorch (flower_sim.py --cpus-per-client 1 --rounds 3: 2 Ray actors x 1 thread, its best
  variant), median of its steady rounds as it prints; skipped with a message if flwr is not installed.
--peers names the folder holding fedavg_torch.py, flower_sim.py and flower_client.py (default: scripts/).
"""
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

from script_support import (REPOSITORY, SCRIPTS, ArgumentParser, fail, require_directory, require_executable,
                            require_fashion_mnist, require_file, require_modules)

ROUND_CONFIG = os.path.join(REPOSITORY, "experiments", "fedavg-iid-round.yaml")


def fedtrain_round(binary):
    with tempfile.TemporaryDirectory() as out:
        command = [binary, "simulate", "--config", ROUND_CONFIG, "--eval-every", "1000", "--out", out]
        try:
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError as error:
            fail(f"{' '.join(command[:4])} ... exited with status {error.returncode}", status=1)
        rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    return statistics.median(r["seconds"] for r in rows[:-1])


def peer_round(peers, script, *arguments):
    environment = dict(os.environ, PYTHONPATH=peers)
    result = subprocess.run([sys.executable, os.path.join(peers, script), *arguments], cwd=peers, env=environment,
                            capture_output=True, text=True)
    match = re.search(r"MEDIAN .*?: ([0-9.]+) s/round", result.stdout)
    if not match:
        print(f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}", file=sys.stderr)
        fail(f"{script} printed no MEDIAN line (exit status {result.returncode}; the end of its output is above)",
             status=1)
    return float(match.group(1))


def main():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fedtrain", required=True, help="the fedtrain executable, e.g. .build/release/fedtrain")
    p.add_argument("--peers", default=SCRIPTS, help="folder of fedavg_torch.py and flower_sim.py (default: %(default)s)")
    args = p.parse_args()
    require_executable(args.fedtrain)
    require_file(ROUND_CONFIG)
    peers = os.path.abspath(require_directory(args.peers))
    require_file(os.path.join(peers, "fedavg_torch.py"))
    with_flower = importlib.util.find_spec("flwr") is not None
    if with_flower:
        for script in ("flower_sim.py", "flower_client.py"):
            require_file(os.path.join(peers, script))
    require_fashion_mnist()
    require_modules("torch", hint="make compare-fedavg installs it into .venv")

    ours = fedtrain_round(args.fedtrain)
    print(f"fedtrain:          {ours:.2f} s/round", flush=True)
    torch_s = peer_round(peers, "fedavg_torch.py", "--threads", "2", "--rounds", "3")
    print(f"PyTorch loop:      {torch_s:.2f} s/round  -> fedtrain {torch_s / ours:.2f}x faster", flush=True)
    if not with_flower:
        print("Flower:            skipped (pip install 'flwr[simulation]' into this Python to include it)")
        return
    flower_s = peer_round(peers, "flower_sim.py", "--cpus-per-client", "1", "--rounds", "3")
    print(f"Flower + PyTorch:  {flower_s:.2f} s/round  -> fedtrain {flower_s / ours:.2f}x faster", flush=True)
    again = fedtrain_round(args.fedtrain)
    print(f"fedtrain again:    {again:.2f} s/round (ratios use the first run)")


if __name__ == "__main__":
    main()
