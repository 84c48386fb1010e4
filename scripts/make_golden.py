"""Writes the PyTorch golden fixture the Swift tests compare against.

Usage: .venv/bin/python scripts/make_golden.py   (needs torch and safetensors; CI never runs it)

For each model (LeNet-5 grayscale as in scripts/torch_lenet5.py, the RGB variant, and the described
model of Tests/EngineTests/Fixtures/described.json with 7 classes, the BatchNorm model of batchnorm.json with
4 and the BatchNorm and Dropout model of dropout.json with 5, built by scripts/torch_model.py), from fixed
seeded weights and one fixed batch, it stores:
  <model>.param.<name>     the initial weights (PyTorch state_dict names)
  <model>.input, .labels   the batch (labels as float)
  <model>.logits, .loss    the forward pass; loss is the batch-mean cross-entropy
  <model>.grad.<name>      every parameter gradient of that loss
  <model>.momentum3.<name> weights after 3 SGD steps on the batch (lr 0.05, momentum 0.9)
  <model>.nesterov3.<name> weights after 3 SGD steps (lr 0.05, momentum 0.9, Nesterov, weight decay 0.01)
Dropout runs in training mode with fedtrain's masks (FedtrainDropout: PyTorch's random stream cannot be
matched, so the masks are drawn as Sources/Engine/Layers/Dropout.swift draws them, with seed 0, the seed of
every pass the golden tests run), and PyTorch applies them as nn.Dropout does.
And, as PyTorch itself writes a checkpoint, the grayscale model's initial weights in
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


MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15


def _splitmix(x):
    """SeededGenerator.splitMix64: the advanced state and the output."""
    x = (x + GOLDEN_GAMMA) & MASK64
    z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return x, z ^ (z >> 31)


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK64


def fedtrain_uniforms(seed, layer, row, count):
    """`count` draws of SeededGenerator.derived(seed: seed, layer, then: row).nextUnitFloat()
    (Sources/Engine/SeededGenerator.swift: xoshiro256** seeded by SplitMix64, 24-bit floats)."""
    key = seed
    for component in (layer, row):
        key = _splitmix(key ^ ((component * GOLDEN_GAMMA) & MASK64))[1]
    s = []
    for _ in range(4):
        key, value = _splitmix(key)
        s.append(value)
    draws = []
    for _ in range(count):
        draws.append((((_rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64) >> 40) * 2.0 ** -24)
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = _rotl(s[3], 45)
    return draws


def fedtrain_dropout(model, seed=0):
    """`model` with each nn.Dropout replaced by nn.Dropout's arithmetic on fedtrain's mask: in
    training, row r of the batch keeps the values whose draw from fedtrain_uniforms(seed, index, r)
    is at least p (index: the layer's position in the Sequential) and scales them by 1/(1 - p) in
    float32; in evaluation, the identity."""
    class FedtrainDropout(torch.nn.Module):
        def __init__(self, p, index):
            super().__init__()
            self.p, self.index = p, index

        def forward(self, x):
            if not self.training or self.p == 0:
                return x
            count = x[0].numel()
            keep = torch.tensor([[u >= self.p for u in fedtrain_uniforms(seed, self.index, row, count)]
                                 for row in range(x.shape[0])]).reshape(x.shape)
            scale = torch.tensor(1.0) / torch.tensor(1.0 - self.p)
            return torch.where(keep, x * scale, torch.zeros_like(x))

    for index, module in enumerate(model):
        if isinstance(module, torch.nn.Dropout):
            model[index] = FedtrainDropout(module.p, index)
    return model


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
    dropped = fedtrain_dropout(torch_model.build(torch_model.load_spec(os.path.join(fixtures, "dropout.json")), None, 5))
    record("dropout", dropped, torch.randn(6, 2, 10, 10), torch.tensor([4, 0, 2, 1, 3, 2]), out)
    path = os.path.join(fixtures, "golden.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path, metadata={"generator": "scripts/make_golden.py",
                                                                           "torch": torch.__version__})
    print(f"wrote {os.path.normpath(path)} ({len(out)} tensors, torch {torch.__version__})")


if __name__ == "__main__":
    main()
