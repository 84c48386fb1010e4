"""PyTorch's nn.Sequential for a fedtrain model description (the `model` YAML of a job, see
Sources/Engine/ModelSpec.swift), so a fedtrain checkpoint loads with load_state_dict into it.

Usage as a module: build(spec, input_shape, classes) -> nn.Sequential; load_spec(path) reads a
YAML file holding the description alone or under a `model` key; builtin(name) gives fedavg-cnn;
model_for(name) gives the module of a `--model` argument (lenet5 included).
"""
FEDAVG_CNN = {"layers": [
    {"conv": {"out": 32, "kernel": 5, "padding": 2}}, "relu", {"maxpool": 2},
    {"conv": {"out": 64, "kernel": 5, "padding": 2}}, "relu", {"maxpool": 2},
    "flatten", {"dense": 512}, "relu", {"dense": "classes"}]}


def load_spec(path):
    import yaml

    with open(path) as f:
        spec = yaml.safe_load(f)
    return spec["model"] if set(spec) == {"model"} else spec


def builtin(name):
    if name == "fedavg-cnn":
        return FEDAVG_CNN
    raise ValueError(f"no built-in description {name}")


def model_for(name, input_shape=(1, 28, 28), classes=10):
    """The PyTorch module of a fedtrain `--model` argument: lenet5 (scripts/torch_lenet5.py),
    fedavg-cnn, or a description YAML file."""
    if name == "lenet5":
        from torch_lenet5 import LeNet5

        return LeNet5()
    return build(builtin(name) if name == "fedavg-cnn" else load_spec(name), list(input_shape), classes)


def build(spec, input_shape, classes):
    """The nn.Sequential of `spec` for per-sample `input_shape` ([C, H, W]) and `classes`."""
    import torch.nn as nn

    shape = list(spec.get("input") or input_shape)
    modules = []
    for layer in spec["layers"]:
        name, settings = (layer, None) if isinstance(layer, str) else next(iter(layer.items()))
        if name == "conv":
            k, s, p = settings["kernel"], settings.get("stride", 1), settings.get("padding", 0)
            modules.append(nn.Conv2d(shape[0], settings["out"], k, stride=s, padding=p))
            shape = [settings["out"], (shape[1] + 2 * p - k) // s + 1, (shape[2] + 2 * p - k) // s + 1]
        elif name in ("maxpool", "avgpool"):
            k, s = (settings, settings) if isinstance(settings, int) else (settings["kernel"], settings.get("stride", settings["kernel"]))
            modules.append((nn.MaxPool2d if name == "maxpool" else nn.AvgPool2d)(k, stride=s))
            shape = [shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1]
        elif name == "dense":
            out = settings["out"] if isinstance(settings, dict) else settings
            out = classes if out == "classes" else out
            modules.append(nn.Linear(shape[0], out))
            shape = [out]
        elif name == "relu":
            modules.append(nn.ReLU())
        elif name == "batchnorm":
            modules.append(nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0]))
        elif name == "dropout":
            modules.append(nn.Dropout(settings))
        elif name == "flatten":
            modules.append(nn.Flatten())
            size = 1
            for d in shape:
                size *= d
            shape = [size]
        else:
            raise ValueError(f"unknown layer {name}")
    return nn.Sequential(*modules)
