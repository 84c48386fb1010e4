"""Plain-PyTorch FedAvg round timing: 10 IID clients x 6000 images, 1 local epoch, B=32.
The PyTorch reference loop that scripts/fedavg_compare.py (make compare-fedavg) runs.

Usage: python scripts/fedavg_torch.py --threads 1 --rounds 3   (needs torch)
Clients train one after another in this process; the server then takes the
sample-weighted average of the client state_dicts.  Round time = wall clock of
all local training + averaging (+ state copies).
"""
import statistics
import time

from script_support import ArgumentParser, positive_int, require_fashion_mnist, require_modules

p = ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--threads", type=positive_int, default=1)
p.add_argument("--clients", type=positive_int, default=10)
p.add_argument("--batch", type=positive_int, default=32)
p.add_argument("--lr", type=float, default=0.05)
p.add_argument("--rounds", type=positive_int, default=3)
args = p.parse_args()
require_fashion_mnist()
require_modules("torch", hint="make compare-fedavg installs it into .venv")

import torch  # noqa: E402

from torch_lenet5 import LeNet5, accuracy, load_fashion_mnist, train_epoch  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
xtr, ytr = load_fashion_mnist("train")
xte, yte = load_fashion_mnist("t10k")
shards = torch.randperm(len(xtr)).chunk(args.clients)  # IID split, 6000 each
clients = [(xtr[s], ytr[s]) for s in shards]


def fedavg(states, weights):
    total = sum(weights)
    return {k: sum(w / total * s[k] for s, w in zip(states, weights)) for k in states[0]}


global_model, local = LeNet5(), LeNet5()
gen = torch.Generator().manual_seed(0)
round_s, avg_s = [], []
for r in range(args.rounds):
    t0 = time.perf_counter()
    global_state = {k: v.clone() for k, v in global_model.state_dict().items()}
    states, weights = [], []
    for cx, cy in clients:
        local.load_state_dict(global_state)
        train_epoch(local, cx, cy, args.batch, args.lr, gen)
        states.append({k: v.clone() for k, v in local.state_dict().items()})
        weights.append(len(cx))
    ta = time.perf_counter()
    global_model.load_state_dict(fedavg(states, weights))
    t1 = time.perf_counter()
    round_s.append(t1 - t0)
    avg_s.append(t1 - ta)
    print(f"round {r}: {round_s[-1]:.2f}s (averaging {avg_s[-1] * 1e3:.2f} ms) "
          f"test_acc {accuracy(global_model, xte, yte):.4f}", flush=True)
print(f"MEDIAN threads={args.threads}: {statistics.median(round_s):.2f} s/round, "
      f"averaging {statistics.median(avg_s) * 1e3:.2f} ms, "
      f"{args.clients * len(clients[0][0]) / statistics.median(round_s):.0f} img/s")
