"""Loads a fedtrain checkpoint into PyTorch's LeNet5 (scripts/torch_lenet5.py) and reports its
test accuracy on normalized Fashion-MNIST, to compare with what fedtrain reported.

Usage: .venv/bin/python scripts/check_checkpoint.py MODEL.safetensors   (needs torch and safetensors)
"""
from script_support import ArgumentParser, fail, require_fashion_mnist, require_file, require_modules


def main():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", metavar="MODEL.safetensors", help="a checkpoint, e.g. results/train/model.safetensors")
    path = p.parse_args().path
    require_file(path, "make train writes results/train/model.safetensors")
    require_fashion_mnist()
    require_modules("torch", "safetensors", hint="make check-checkpoint installs them into .venv")

    import torch
    from safetensors.torch import load_file
    from torch_lenet5 import LeNet5, accuracy, load_fashion_mnist

    model = LeNet5()
    try:
        model.load_state_dict(load_file(path))  # strict: every name and shape must match
    except Exception as error:  # safetensors' header errors and load_state_dict's mismatches alike
        fail(f"{path} is not a LeNet-5 checkpoint: {error}")
    x_test, y_test = load_fashion_mnist("t10k", normalize=True)
    print(f"PyTorch {torch.__version__}: {path} test accuracy {100 * accuracy(model, x_test, y_test):.2f}%")


if __name__ == "__main__":
    main()
