"""Loads a fedtrain checkpoint into PyTorch (LeNet5 of scripts/torch_lenet5.py, or the nn.Sequential
of a described model, scripts/torch_model.py) and reports its test accuracy on normalized
Fashion-MNIST, to compare with what fedtrain reported.

Usage: .venv/bin/python scripts/check_checkpoint.py MODEL.safetensors [--model lenet5|fedavg-cnn|FILE.yaml]
(needs torch and safetensors)
"""
from script_support import ArgumentParser, fail, require_fashion_mnist, require_file, require_modules


def main():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("path", metavar="MODEL.safetensors", help="a checkpoint, e.g. results/train/model.safetensors")
    p.add_argument("--model", default="lenet5", help="lenet5, fedavg-cnn or a model description YAML (default: lenet5)")
    args = p.parse_args()
    path = args.path
    if args.model not in ("lenet5", "fedavg-cnn"):
        require_file(args.model)
    require_file(path, "make train writes results/train/model.safetensors")
    require_fashion_mnist()
    require_modules("torch", "safetensors", hint="make check-checkpoint installs them into .venv")

    import torch
    from safetensors.torch import load_file
    from torch_lenet5 import accuracy, load_fashion_mnist

    import torch_model

    model = torch_model.model_for(args.model)
    try:
        model.load_state_dict(load_file(path))  # strict: every name and shape must match
    except Exception as error:  # safetensors' header errors and load_state_dict's mismatches alike
        fail(f"{path} is not a {args.model} checkpoint: {error}")
    x_test, y_test = load_fashion_mnist("t10k", normalize=True)
    print(f"PyTorch {torch.__version__}: {path} test accuracy {100 * accuracy(model, x_test, y_test):.2f}%")


if __name__ == "__main__":
    main()
