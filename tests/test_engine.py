"""Training loop, non-finite detection, atomic checkpoints, the ResNet-18 ablation models."""
import os

import pytest
import torch

from pcn.checkpoint import atomic_save, load_checkpoint, rng_state, set_rng_state
from pcn.engine import NonFiniteError, build_optimizer, evaluate, step_lr, train_one_epoch
from pcn.model import PhaseCollapseConfig, PhaseCollapseNet, count_parameters
from pcn.resnet import BiasFreeResNet18, NonLinearity


def toy_loader(n=32, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, size, size, generator=g)
    y = torch.arange(n) % 4
    x += y.view(-1, 1, 1, 1).float()
    return [(x[i:i + 8], y[i:i + 8]) for i in range(0, n, 8)]


def tiny_model(**kw):
    return PhaseCollapseNet(PhaseCollapseConfig(in_channels=1, image_size=16, num_classes=4, widths=(4, 8), **kw))


def test_step_lr():
    assert [step_lr(0.01, e, 70, 0.1) for e in (0, 69, 70, 140, 299)] == pytest.approx([0.01, 0.01, 1e-3, 1e-4, 1e-6])


def test_training_reduces_loss():
    torch.manual_seed(0)
    model = tiny_model()
    opt = build_optimizer(model, 0.05, 0.9, 1e-4)
    loader = toy_loader()
    first = train_one_epoch(model, loader, opt, torch.device("cpu"), 0)
    for epoch in range(1, 6):
        last = train_one_epoch(model, loader, opt, torch.device("cpu"), epoch)
    assert last.loss < first.loss and last.samples == 32
    stats = evaluate(model, loader, torch.device("cpu"))
    assert 0 <= stats.top1 <= stats.top5 <= 1


def test_non_finite_loss_names_epoch_and_step():
    model = tiny_model()
    opt = build_optimizer(model, 0.01, 0.9, 0.0)
    loader = toy_loader()
    loader[2] = (torch.full_like(loader[2][0], float("nan")), loader[2][1])
    with pytest.raises(NonFiniteError, match="non-finite loss at epoch 7, step 2"):
        train_one_epoch(model, loader, opt, torch.device("cpu"), 7)


def test_atomic_save_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "ckpt.pt"
    atomic_save({"epoch": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"epoch": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]                       # no temporary file left behind
    assert load_checkpoint(tmp_path / "none.pt") is None
    (tmp_path / "torn.pt").write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="unreadable"):
        load_checkpoint(tmp_path / "torn.pt")


def test_rng_state_roundtrip():
    state = rng_state()
    a = torch.rand(3)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), a)


@pytest.mark.parametrize("kind", ["relu", "abs", "thresh", "tanh", "powfixed"])
def test_bias_free_resnet18_trains_every_nonlinearity(kind):
    torch.manual_seed(0)
    model = BiasFreeResNet18(1, 4, kind, stem="small")
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert not any(m.affine for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    opt = build_optimizer(model, 0.01, 0.9, 1e-4)
    stats = train_one_epoch(model, toy_loader(16, 8), opt, torch.device("cpu"), 0)
    assert stats.samples == 16
    assert len(model.layer_features(torch.randn(2, 1, 8, 8))) == 5


def test_resnet18_parameter_count_and_threshold():
    model = BiasFreeResNet18(3, 1000, "relu")
    assert count_parameters(model) == 11_679_912                     # the reference's trainable count
    learned = BiasFreeResNet18(3, 1000, "thresh", learned=True)
    frozen = BiasFreeResNet18(3, 1000, "thresh", learned=False)
    assert count_parameters(learned) > count_parameters(frozen) == 11_679_912
    nl = NonLinearity("thresh", 2, threshold=1.0)
    x = torch.tensor([[-3.0, -0.5], [0.5, 2.0]]).view(1, 2, 1, 2)      # (B, C, H, W)
    assert nl(x).flatten().tolist() == [-2.0, 0.0, 0.0, 1.0]           # soft thresholding at 1
    with pytest.raises(ValueError, match="valid: relu, abs, thresh, tanh, powfixed"):
        NonLinearity("gelu", 2)


def test_every_table2_nonlinearity_trains():
    for kind in ("mod", "cst", "ms", "mc", "tanh", "relu"):
        for arch in ("lscat", "lscat_skip"):
            torch.manual_seed(0)
            model = tiny_model(nonlinearity=kind, arch=arch)
            opt = build_optimizer(model, 0.01, 0.9, 1e-4)
            stats = train_one_epoch(model, toy_loader(16), opt, torch.device("cpu"), 0)
            assert stats.samples == 16, (kind, arch)
