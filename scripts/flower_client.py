"""Flower ClientApp for scripts/flower_sim.py (own module so Ray workers can unpickle it)."""
import functools

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from torch_lenet5 import LeNet5, load_fashion_mnist, train_epoch

CLIENTS, BATCH, LR = 10, 32, 0.05


@functools.lru_cache(maxsize=None)
def dataset():  # loaded once per process (Ray actor or server): (x_train, y_train, x_test, y_test)
    return load_fashion_mnist("train") + load_fashion_mnist("t10k")


def client_data(pid):
    """IID shard pid of the 60k training images (6000 each)."""
    xtr, ytr, _, _ = dataset()
    shard = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(0)).chunk(CLIENTS)[pid]
    return xtr[shard], ytr[shard]


client_app = ClientApp()


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    config = msg.content["config"]
    torch.set_num_threads(int(config["threads"]))
    pid = int(context.node_config["partition-id"])
    gen = torch.Generator().manual_seed(1000 * int(config["server-round"]) + pid)
    x, y = client_data(pid)
    model = LeNet5()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    train_epoch(model, x, y, BATCH, LR, gen)
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()),
                          "metrics": MetricRecord({"num-examples": len(x)})})
    return Message(content=content, reply_to=msg)
