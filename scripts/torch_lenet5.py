"""The PyTorch side the scripts compare against, the one definition of it in this repository: the
LeNet-5 of the PyTorch reference scripts (fedavg_torch.py, flower_sim.py), with the input channels
and conv1 padding as parameters (1 and 2 for 28x28 images, 3 and 0 for 32x32 RGB), the
Fashion-MNIST loader, one epoch of plain SGD and test accuracy."""
import gzip
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F
from script_support import FASHION_MNIST


def load_idx(path):
    """An IDX file (gzip) as a uint8 tensor of its dimensions."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def load_fashion_mnist(split="train", normalize=False):
    """Images (N x 1 x 28 x 28, float in [0, 1], or normalized with mean 0.2860 and std 0.3530 as
    fedtrain does) and labels (int64) of the `train` or `t10k` split."""
    x = load_idx(f"{FASHION_MNIST}/{split}-images-idx3-ubyte.gz").float().div_(255).unsqueeze(1).contiguous()
    if normalize:
        x = (x - 0.2860) / 0.3530
    return x, load_idx(f"{FASHION_MNIST}/{split}-labels-idx1-ubyte.gz").long()


class LeNet5(nn.Module):
    def __init__(self, channels=1, padding=2):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 6, 5, padding=padding)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def train_epoch(model, x, y, batch, lr, gen):
    """One epoch of plain SGD over (x, y) in a random order. Last partial batch is kept."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    perm = torch.randperm(len(x), generator=gen)
    for i in range(0, len(x), batch):
        idx = perm[i:i + batch]
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return loss.item()


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    """Fraction of (x, y) that `model` classifies correctly."""
    model.eval()
    correct = sum((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
                  for i in range(0, len(x), batch))
    return correct / len(x)
