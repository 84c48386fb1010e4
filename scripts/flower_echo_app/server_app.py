"""Echo ServerApp: FedAvg over all clients, LeNet-5-sized float32 parameters.

Records wall-clock timestamps around every round (configure_fit start ->
aggregate_fit end) and writes them to `out-file` (run config) as JSON.
"""

import json
import os
import time

import numpy as np
from flwr.common import Context, ndarrays_to_parameters
from flwr.server import ServerApp, ServerAppComponents, ServerConfig
from flwr.server.client_manager import SimpleClientManager
from flwr.server.server import Server
from flwr.server.strategy import FedAvg

# LeNet-5 shapes as in Sources/Engine/LeNet5.swift (fc1 is 400 -> 120):
# 61,706 float32 values in total.
SHAPES = [
    (6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400),
    (120,), (84, 120), (84,), (10, 84), (10,),
]


def initial_arrays():
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(np.float32) for s in SHAPES]


class TimedFedAvg(FedAvg):
    """FedAvg that timestamps every round."""

    def __init__(self, out_file: str, num_rounds: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.out_file = out_file
        self.num_rounds = num_rounds
        self.starts: dict[int, float] = {}
        self.ends: dict[int, float] = {}
        self.replies: dict[int, int] = {}
        self.client_t: dict[int, list[tuple[float, float]]] = {}

    def configure_fit(self, server_round, parameters, client_manager):
        self.starts[server_round] = time.time()
        return super().configure_fit(server_round, parameters, client_manager)

    def aggregate_fit(self, server_round, results, failures):
        out = super().aggregate_fit(server_round, results, failures)
        self.ends[server_round] = time.time()
        self.replies[server_round] = len(results)
        self.client_t[server_round] = [
            (float(r.metrics.get("t_load", 0.0)), float(r.metrics.get("t_fit", 0.0)))
            for _, r in results
        ]
        dt = self.ends[server_round] - self.starts[server_round]
        print(
            f"ECHO_ROUND {server_round} {dt:.4f} s replies={len(results)} "
            f"failures={len(failures)}",
            flush=True,
        )
        self._dump()
        return out

    def _dump(self) -> None:
        if not self.out_file:
            return
        rounds = sorted(self.ends)
        data = {
            "rounds": [
                {
                    "round": r,
                    "start": self.starts[r],
                    "end": self.ends[r],
                    "seconds": self.ends[r] - self.starts[r],
                    "replies": self.replies[r],
                    # per client: (module loaded in flwr-clientapp, fit() called)
                    "client_t": self.client_t[r],
                }
                for r in rounds
            ],
            "complete": len(rounds) >= self.num_rounds,
        }
        tmp = self.out_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.out_file)


def server_fn(context: Context) -> ServerAppComponents:
    cfg = context.run_config
    num_rounds = int(cfg["num-server-rounds"])
    num_clients = int(cfg["num-clients"])
    strategy = TimedFedAvg(
        out_file=str(cfg.get("out-file", "")),
        num_rounds=num_rounds,
        fraction_fit=1.0,
        fraction_evaluate=0.0,  # no federated evaluation rounds
        min_fit_clients=num_clients,
        min_evaluate_clients=0,
        min_available_clients=num_clients,
        initial_parameters=ndarrays_to_parameters(initial_arrays()),
    )
    # Legacy Server runs fit_clients on a ThreadPoolExecutor whose default size is
    # min(32, cpu_count + 4); on small machines that is < num_clients and would
    # split every round into waves. Give it one worker per client.
    server = Server(client_manager=SimpleClientManager(), strategy=strategy)
    server.set_max_workers(num_clients)
    config = ServerConfig(
        num_rounds=num_rounds, round_timeout=float(cfg["round-timeout"])
    )
    return ServerAppComponents(server=server, config=config)


app = ServerApp(server_fn=server_fn)
