"""Loads a fedtrain checkpoint into PyTorch's LeNet5 (shared/peers/common.py) and reports its
test accuracy on normalized Fashion-MNIST, to compare with what fedtrain reported.

Usage: .venv/bin/python scripts/check_checkpoint.py MODEL.safetensors [PEERS_DIR]
"""
import os
import sys

import torch
from safetensors.torch import load_file

path = sys.argv[1]
peers = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "peers")
sys.path.insert(0, peers)
from common import LeNet5, accuracy, load_fashion_mnist  # noqa: E402

model = LeNet5()
model.load_state_dict(load_file(path))  # strict: every name and shape must match
_, _, x_test, y_test = load_fashion_mnist()
x_test = (x_test - 0.2860) / 0.3530
print(f"PyTorch {torch.__version__}: {path} test accuracy {100 * accuracy(model, x_test, y_test):.2f}%")
