"""Flower (flwr 1.42, Message API) simulation of the same FedAvg round as scripts/fedavg_torch.py,
which scripts/fedavg_compare.py (make compare-fedavg) runs when flwr is installed.

10 IID clients x 6000 images, 1 local epoch, B=32, SGD lr 0.05, 3 rounds.
Usage: python scripts/flower_sim.py --cpus-per-client 1   # 2 Ray actors in parallel, 1 torch thread each
       python scripts/flower_sim.py --cpus-per-client 2   # 1 Ray actor, 2 torch threads
Round time = gap between the server-side evaluate_fn calls, minus the evaluation itself.
"""
import os
import statistics
import time

from script_support import ArgumentParser, positive_int, require_fashion_mnist, require_modules

p = ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--cpus-per-client", type=positive_int, default=1)
p.add_argument("--rounds", type=positive_int, default=3)
args = p.parse_args()
require_fashion_mnist()
require_modules("torch", "flwr", hint="make compare-fedavg installs them into .venv")

import torch  # noqa: E402
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import FedAvg  # noqa: E402
from flwr.simulation import run_simulation  # noqa: E402

from flower_client import CLIENTS, client_app, dataset  # noqa: E402
from torch_lenet5 import LeNet5, accuracy  # noqa: E402

marks = []  # (eval start, eval end) per evaluate_fn call


def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord:
    t0 = time.perf_counter()
    model = LeNet5()
    model.load_state_dict(arrays.to_torch_state_dict())
    _, _, xte, yte = dataset()
    acc = accuracy(model, xte, yte)
    marks.append((t0, time.perf_counter()))
    if server_round > 0:
        print(f"ROUND {server_round}: {marks[-1][0] - marks[-2][1]:.2f}s test_acc {acc:.4f}", flush=True)
    return MetricRecord({"accuracy": acc})


server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context) -> None:
    strategy = FedAvg(fraction_evaluate=0.0, min_train_nodes=CLIENTS, min_available_nodes=CLIENTS)
    strategy.start(grid=grid, initial_arrays=ArrayRecord(LeNet5().state_dict()),
                   num_rounds=args.rounds, evaluate_fn=evaluate,
                   train_config=ConfigRecord({"threads": args.cpus_per_client}))


if __name__ == "__main__":
    # Ray workers must be able to import flower_client, torch_lenet5 and script_support (all in this folder)
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = here + os.pathsep + os.environ.get("PYTHONPATH", "")
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    run_simulation(server_app=server_app, client_app=client_app, num_supernodes=CLIENTS,
                   backend_config={"client_resources": {"num_cpus": args.cpus_per_client,
                                                        "num_gpus": 0.0}})
    total = time.perf_counter() - t0
    rounds = [b[0] - a[1] for a, b in zip(marks, marks[1:])]
    print(f"MEDIAN cpus_per_client={args.cpus_per_client}: {statistics.median(rounds):.2f} s/round "
          f"(rounds {', '.join(f'{r:.2f}' for r in rounds)}); total wall incl. Ray start {total:.1f}s")
