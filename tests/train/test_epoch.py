"""The training loop: learning, non-finite detection without per-step syncs, resumable fits, AMP and compile."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pcn import names
from pcn.nn.nonlinearities import resnet_nonlinearity
from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet
from pcn.nn.resnet import BiasFreeResNet18
from pcn.train.epoch import NonFiniteError, build_optimizer, run_test_pass, step_lr, train_one_epoch
from pcn.train.loop import Schedule, TrainingState, fit

CPU = torch.device("cpu")


class ListBatches:
    """Fixed batches with the interface of pcn.data.batches (len, epoch(e))."""

    def __init__(self, batches, faults=None):
        self.batches, self.faults = batches, faults or {}

    def __len__(self):
        return len(self.batches)

    def epoch(self, e):
        for step, (x, y) in enumerate(self.batches):
            yield (torch.full_like(x, float("nan")) if (e, step) in self.faults else x), y


SPOT = torch.tensor([[-1.0, -1, -1], [-1, 8, -1], [-1, -1, -1]])
EDGE = torch.tensor([[1.0, 1, 1], [0, 0, 0], [-1, -1, -1]])
DIAGONAL = torch.tensor([[0.0, 1, 1], [-1, 0, 1], [-1, -1, 0]])
#: The motif of each of the 4 classes (3x3, zero sum, unit norm): a spot, a horizontal, a vertical, a diagonal edge.
MOTIFS = torch.stack([m / m.norm() for m in (SPOT, EDGE, EDGE.T, DIAGONAL)])
#: The cross-entropy that a network odd up to its last bias cannot go below on toy_batches (balanced classes).
ODD_FLOOR = math.log(4)


def toy_batches(n=32, size=16, seed=0, channels=1, batch=8):
    """Classes that differ by the shape of a local pattern, not by a pixel statistic: an image is noise plus 3 copies
    of its class's motif (:data:`MOTIFS`), each at a random place (circular shift) with a random sign, and every
    batch holds its images x and their negatives -x, in the same class (classes 0-3 twice).

    Every pixel has mean 0 in every class, and the same variance. A network that is odd up to the bias of its
    last layer, f(-x) = -f(x) (bias-free with a sign-preserving non-linearity, or linear), cannot fit these
    classes: the cross-entropy is convex in the logits, so the logits b + u and b - u of x and -x cost at least
    twice those of b alone, and the mean loss of a batch stays >= :data:`ODD_FLOOR`. A network that collapses or
    rectifies the sign fits them.
    """
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(0, n, batch):
        y = torch.arange(batch // 2) % len(MOTIFS)
        x = 0.3 * torch.randn(batch // 2, channels, size, size, generator=g)
        for i, label in enumerate(y.tolist()):
            for _ in range(3):
                canvas = torch.zeros(size, size)
                canvas[:3, :3] = 2 * MOTIFS[label] * (1 if torch.rand(1, generator=g) < 0.5 else -1)
                shift = torch.randint(0, size, (2,), generator=g).tolist()
                x[i] += torch.roll(canvas, shift, (0, 1))
        out.append((torch.cat([x, -x]), torch.cat([y, y])))
    return out


def tiny_model(**kw):
    return PhaseCollapseNet(PhaseCollapseConfig(in_channels=1, image_size=16, num_classes=4, widths=(4, 8), **kw))


def test_step_lr():
    assert [step_lr(0.01, e, 70, 0.1) for e in (0, 69, 70, 140, 299)] == pytest.approx([0.01, 0.01, 1e-3, 1e-4, 1e-6])


def test_training_reduces_loss():
    torch.manual_seed(0)
    model = tiny_model()
    opt = build_optimizer(model, 0.05, 0.9, 1e-4)
    batches = ListBatches(toy_batches())
    first = train_one_epoch(model, batches.epoch(0), opt, CPU, 0, len(batches))
    for epoch in range(1, 6):
        last = train_one_epoch(model, batches.epoch(epoch), opt, CPU, epoch, len(batches))
    assert last.loss < 0.5 * first.loss and last.samples == 32 and last.top1 > first.top1
    stats = run_test_pass(model, batches.epoch(0), CPU)
    assert 0 <= stats.top1 <= stats.top5 <= 1


def test_non_finite_loss_names_epoch_and_step_one_based():
    model = tiny_model()
    opt = build_optimizer(model, 0.01, 0.9, 0.0)
    batches = ListBatches(toy_batches(), faults={(7, 2)})
    with pytest.raises(NonFiniteError, match="non-finite loss at epoch 8, step 3 of 4"):
        train_one_epoch(model, batches.epoch(7), opt, CPU, 7, len(batches))


def test_fit_saves_every_epoch_before_a_fault_and_none_after():
    """A fault in epoch 3 (1-based) stops the fit after epochs 1 and 2 were handed to on_epoch_end."""
    torch.manual_seed(0)
    model = tiny_model()
    opt = build_optimizer(model, 0.01, 0.9, 0.0)
    saved = []
    state = TrainingState()
    with pytest.raises(NonFiniteError, match="epoch 3, step 2"):
        fit(
            model,
            model,
            opt,
            ListBatches(toy_batches(), faults={(2, 1)}),
            ListBatches(toy_batches()),
            Schedule(0.01, 5, 10, 0.1),
            state,
            CPU,
            on_epoch_end=lambda s, row: saved.append(row["epoch"]),
        )
    assert saved == [1, 2] and state.epoch == 2 and len(state.history) == 2


def test_resumed_fit_equals_uninterrupted_fit():
    def run(stop_after=None, resume_from=None):
        torch.manual_seed(0)
        model = tiny_model()
        opt = build_optimizer(model, 0.02, 0.9, 1e-4)
        state = TrainingState()
        if resume_from is not None:
            model.load_state_dict(resume_from["model"])
            opt.load_state_dict(resume_from["optimizer"])
            state = TrainingState.from_dict(resume_from["state"])
        snapshots = {}

        def on_end(s, row):
            snapshots[s.epoch] = {
                "model": {k: v.clone() for k, v in model.state_dict().items()},
                "optimizer": __import__("copy").deepcopy(opt.state_dict()),
                "state": __import__("copy").deepcopy(s.as_dict()),
            }

        epochs = stop_after or 4
        fit(
            model,
            model,
            opt,
            ListBatches(toy_batches()),
            ListBatches(toy_batches(seed=1)),
            Schedule(0.02, epochs, 2, 0.1),
            state,
            CPU,
            on_epoch_end=on_end,
        )
        return model, state, snapshots

    full_model, full_state, _ = run()
    _, _, snaps = run(stop_after=2)
    resumed_model, resumed_state, _ = run(resume_from=snaps[2])
    assert [r["test_acc"] for r in resumed_state.history] == [r["test_acc"] for r in full_state.history]
    for a, b in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)


class SyncCounter(TorchDispatchMode):
    """Counts the operations that make the host wait for the device (reading a tensor's value)."""

    SYNCING = {"_local_scalar_dense", "item", "equal", "is_nonzero", "nonzero"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] in self.SYNCING:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("arch,nonlinearity", [("lscat", "mod"), ("lscat_skip", "cst")])
def test_no_host_synchronization_per_step(arch, nonlinearity):
    """The number of value reads per epoch does not grow with the number of steps."""
    counts = {}
    for n_batches in (2, 6):
        torch.manual_seed(0)
        model = tiny_model(arch=arch, nonlinearity=nonlinearity)
        opt = build_optimizer(model, 0.01, 0.9, 1e-4)
        batches = ListBatches(toy_batches(n=8 * n_batches))
        with SyncCounter() as counter:
            train_one_epoch(model, batches.epoch(0), opt, CPU, 0, len(batches))
        counts[n_batches] = counter.count
    assert counts[2] == counts[6] <= 2, counts


def test_cpu_bf16_autocast_matches_float32_losses():
    """AMP runs the projections in bf16 (also on CPU); losses stay within 2% of float32 over 3 epochs."""
    losses = {}
    for amp in (False, True):
        torch.manual_seed(0)
        model = tiny_model(arch="lscat_skip")
        # a small step: at 0.02 the modulus fits toy_batches within an epoch, to losses too small to compare
        opt = build_optimizer(model, 0.002, 0.9, 1e-4)
        batches = ListBatches(toy_batches())
        losses[amp] = [
            train_one_epoch(model, batches.epoch(e), opt, CPU, e, len(batches), amp=amp).loss for e in range(3)
        ]
    assert losses[True] == pytest.approx(losses[False], rel=0.02)
    assert losses[True] != losses[False]  # bf16 really ran


@pytest.mark.slow
def test_torch_compile_matches_eager_losses():
    """torch.compile (inductor, on CPU) trains to the same losses as eager within 1e-3 relative."""
    losses = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        model = tiny_model()
        opt = build_optimizer(model, 0.002, 0.9, 1e-4)  # losses of a size to compare (as for AMP)
        net = torch.compile(model) if compiled else model
        batches = ListBatches(toy_batches())
        losses[compiled] = [train_one_epoch(net, batches.epoch(e), opt, CPU, e, len(batches)).loss for e in range(2)]
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)


def sign_preserving(arch: str) -> tuple[str, ...]:
    """The non-linearities of ``arch`` that keep the sign, f(-x) = -f(x): the phase-preserving ones, the identity."""
    return (*names.of_family(arch, names.PHASE_PRESERVING), "identity")


@pytest.mark.parametrize("kind", names.RESNET_NONLINEARITIES)
def test_bias_free_resnet18_fits_the_toy_classes_unless_its_nonlinearity_keeps_the_sign(kind):
    """The paper's Table 3 on toy_batches: without biases, a ResNet whose non-linearity keeps the sign (thresh, tanh,
    powfixed, identity) is odd and stays at the floor of toy_batches; relu, abs and absdead fit the classes."""
    torch.manual_seed(0)
    # b = 1 after affine-free BatchNorm zeroes most of every output: on these 16 toy images it learns slowly (its
    # loss rose for 4 epochs on earlier toy data, measured); b = 0.5 learns from the first epoch
    model = BiasFreeResNet18(1, 4, kind, stem="small", **({"threshold_init": 0.5} if kind in names.THRESHOLDED else {}))
    assert not any(m.bias is not None for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert not any(m.affine for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    opt = build_optimizer(model, 0.01, 0.9, 1e-4)
    batches = ListBatches(toy_batches(16))
    losses = [train_one_epoch(model, batches.epoch(e), opt, CPU, e, len(batches)).loss for e in range(5)]
    if kind in sign_preserving("resnet18"):
        assert min(losses) > ODD_FLOOR - 0.01, losses
    else:
        assert losses[-1] < 0.5 * ODD_FLOOR < losses[0], losses
    assert len(model.layer_features(torch.randn(2, 1, 8, 8))) == 5
    if kind in names.THRESHOLDED:  # the learned threshold moved
        assert not torch.allclose(model.stem[2].threshold, torch.full((64,), 0.5))


def test_resnet18_parameter_count_and_threshold():
    model = BiasFreeResNet18(3, 1000, "relu")
    from pcn.nn.phase_collapse import count_parameters

    assert count_parameters(model) == 11_679_912  # the reference's trainable count
    learned = BiasFreeResNet18(3, 1000, "thresh", learned=True)
    frozen = BiasFreeResNet18(3, 1000, "thresh", learned=False)
    assert count_parameters(learned) > count_parameters(frozen) == 11_679_912
    nl = resnet_nonlinearity("thresh", 2, True, 1.0)
    x = torch.tensor([[-3.0, -0.5], [0.5, 2.0]]).view(1, 2, 1, 2)  # (B, C, H, W)
    assert nl(x).flatten().tolist() == [-2.0, 0.0, 0.0, 1.0]  # soft thresholding at 1
    with pytest.raises(ValueError, match="valid: relu, abs, thresh, absdead, tanh, powfixed, identity"):
        resnet_nonlinearity("gelu", 2, True, 1.0)


@pytest.mark.parametrize("kind", names.LSCAT_NONLINEARITIES)
@pytest.mark.parametrize("arch", names.LSCAT_ARCHITECTURES)
def test_lscat_fits_the_toy_classes_unless_its_nonlinearity_keeps_the_sign(kind, arch):
    """The paper's Table 2 on toy_batches: with a phase-preserving rho (or none) an LScat network is odd up to its
    classifier's biases and stays at the floor of toy_batches; the modulus (and the ReLU of the parts) fit the
    classes. The learned parameters of rho get gradients either way."""
    torch.manual_seed(0)
    model = tiny_model(nonlinearity=kind, arch=arch)
    opt = build_optimizer(model, 0.05, 0.9, 1e-4)
    batches = ListBatches(toy_batches())
    losses = [train_one_epoch(model, batches.epoch(e), opt, CPU, e, len(batches)).loss for e in range(4)]
    if kind in sign_preserving(arch):
        assert min(losses) > ODD_FLOOR - 0.01, losses
    else:
        assert losses[-1] < 0.1 * ODD_FLOOR < losses[0], losses
    for name, p in model.named_parameters():  # learned non-linearity parameters train
        if name.endswith(("threshold", "gain", "bias")) and "classifier" not in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
