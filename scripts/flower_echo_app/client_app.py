"""Echo ClientApp: fit() returns the received parameters unchanged (no training).

fit() also reports two wall-clock timestamps as metrics so the ServerApp can split a
round into "dispatch" (round start -> fit called) and "return" (fit -> aggregated):
t_load = when this module was imported inside the freshly spawned flwr-clientapp
process, t_fit = when fit() ran.
"""

import time

T_LOAD = time.time()

from flwr.client import ClientApp, NumPyClient
from flwr.common import Context


class EchoClient(NumPyClient):
    def __init__(self, num_examples: int) -> None:
        self.num_examples = num_examples

    def get_parameters(self, config):
        return []  # never called: the strategy supplies initial parameters

    def fit(self, parameters, config):
        return parameters, self.num_examples, {"t_load": T_LOAD, "t_fit": time.time()}

    def evaluate(self, parameters, config):
        return 0.0, self.num_examples, {}  # never called: fraction_evaluate = 0


def client_fn(context: Context):
    num_examples = int(context.run_config.get("num-examples", 6000))
    return EchoClient(num_examples).to_client()


app = ClientApp(client_fn=client_fn)
