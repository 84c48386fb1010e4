"""Writes the PyTorch golden fixture the Swift tests compare against.

Usage: .venv/bin/python scripts/make_golden.py   (needs torch and safetensors; CI never runs it)

For each model (LeNet-5 grayscale as in scripts/torch_lenet5.py, the RGB variant, and the described
model of Tests/EngineTests/Fixtures/described.json with 7 classes and the BatchNorm model of batchnorm.json with
4, built by scripts/torch_model.py), from fixed
seeded weights and one fixed batch, it stores:
  <model>.param.<name>     the initial weights (PyTorch state_dict names)
  <model>.input, .labels   the batch (labels as float)
  <model>.logits, .loss    the forward pass; loss is the batch-mean cross-entropy
  <model>.grad.<name>      every parameter gradient of that loss
  <model>.momentum3.<name> weights after 3 SGD steps on the batch (lr 0.05, momentum 0.9)
  <model>.nesterov3.<name> weights after 3 SGD steps (lr 0.05, momentum 0.9, Nesterov, weight decay 0.01)
and, as PyTorch itself writes a checkpoint, the grayscale model's initial weights in
torch_lenet5.safetensors (safetensors.torch.save_file of the state_dict).
"""
import os

from script_support import ArgumentParser, require_directory, require_modules

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "Tests", "EngineTests", "Fixtures"))


def import_torch():
    """PyTorch and what is built on it, imported once the arguments and folders are checked."""
    global torch, F, LeNet5, save_file, torch_model
    import torch
    import torch.nn.functional as F
    import torch_model
    from torch_lenet5 import LeNet5
    from safetensors.torch import save_file


def record(prefix, model, x, y, out):
    """Training mode throughout (BatchNorm normalizes by the batch); buffers are stored as float32
    (num_batches_tracked included) with a zero gradient, and after the SGD steps the model's
    evaluation-mode logits (BatchNorm by its running statistics) as <prefix>.<tag>.eval_logits."""
    model.train()
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for k, v in initial.items():
        out[f"{prefix}.param.{k}"] = v.float()
    out[f"{prefix}.input"] = x
    out[f"{prefix}.labels"] = y.float()
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out[f"{prefix}.logits"] = logits.detach()
    out[f"{prefix}.loss"] = loss.detach().reshape(1)
    for k, p in model.named_parameters():
        out[f"{prefix}.grad.{k}"] = p.grad.detach().clone()
    for k, b in model.named_buffers():
        out[f"{prefix}.grad.{k}"] = torch.zeros_like(b, dtype=torch.float32)
    for tag, options in [("momentum3", dict(momentum=0.9)),
                         ("nesterov3", dict(momentum=0.9, nesterov=True, weight_decay=0.01))]:
        model.load_state_dict(initial)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, **options)
        for _ in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        for k, v in model.state_dict().items():
            out[f"{prefix}.{tag}.{k}"] = v.detach().clone().float()
        model.eval()
        with torch.no_grad():
            out[f"{prefix}.{tag}.eval_logits"] = model(x)
        model.train()


def main():
    ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # no arguments; --help
    require_directory(FIXTURES)
    require_modules("torch", "safetensors", hint="pip install torch safetensors, e.g. into .venv")
    import_torch()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = {}
    gray = LeNet5(1, 2)
    record("lenet5", gray, torch.randn(6, 1, 28, 28), torch.tensor([0, 3, 9, 3, 5, 7]), out)
    fixtures = FIXTURES
    save_file({k[len("lenet5.param."):]: v.contiguous() for k, v in out.items() if k.startswith("lenet5.param.")},
              os.path.join(fixtures, "torch_lenet5.safetensors"))
    rgb = LeNet5(3, 0)
    record("lenet5rgb", rgb, torch.randn(3, 3, 32, 32), torch.tensor([2, 8, 1]), out)
    described = torch_model.build(torch_model.load_spec(os.path.join(fixtures, "described.json")), None, 7)
    record("described", described, torch.randn(5, 3, 20, 20), torch.tensor([6, 0, 3, 3, 1]), out)
    normalized = torch_model.build(torch_model.load_spec(os.path.join(fixtures, "batchnorm.json")), None, 4)
    record("batchnorm", normalized, torch.randn(6, 2, 12, 12), torch.tensor([3, 1, 0, 2, 2, 1]), out)
    path = os.path.join(fixtures, "golden.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path, metadata={"generator": "scripts/make_golden.py",
                                                                           "torch": torch.__version__})
    print(f"wrote {os.path.normpath(path)} ({len(out)} tensors, torch {torch.__version__})")


if __name__ == "__main__":
    main()
