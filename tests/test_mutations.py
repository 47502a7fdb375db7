"""The quick suite fails on deliberately broken code: each mutant below must be caught.

Every mutant copies the project (every file git tracks), changes one line of the library (what a
plausible bug would change) and runs the quick suite (``-m "not slow"``, stopping at the first failure)
against it: first the tests that guard the changed code (:data:`GUARDS`), so that a caught mutant costs
seconds, and only when they all pass, the whole quick suite. A mutant that the suite does not catch fails
this test, with the mutation named. The unchanged
copy must pass the quick suite first: a copy that fails for another reason (a file the tests read left out
of it) would make every mutant look caught.
"""

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

#: name: (file, original text, broken text)
MUTANTS = {
    "modulus is the real part": ("pcn/nn/modulus.py", "modulus = torch.hypot(re, im)", "modulus = re.clone()"),
    "Morlet filters lose their zero mean": (
        "pcn/nn/morlet.py",
        "return wave - (wave.sum() / envelope.sum()) * envelope",
        "return wave",
    ),
    "subsampled crop off by one": (
        "pcn/nn/spectral.py",
        "return torch.fft.ifft2(product)[..., 1:-1, 1:-1]",
        "return torch.fft.ifft2(product)[..., 2:, 2:]",
    ),
    "standardization forgets the mean": (
        "pcn/nn/layers.py",
        "mean_re, mean_im, mean_sq = sums[:C] / n, sums[C : 2 * C] / n",
        "mean_re, mean_im, mean_sq = 0 * sums[:C], 0 * sums[C : 2 * C]",
    ),
    "fused backward drops the statistics terms": (
        "pcn/nn/fused_projection.py",
        "            if ctx.batch_statistics:\n                dx.addcmul_",
        "            if False:\n                dx.addcmul_",
    ),
    "Gauss product sign": (
        "pcn/nn/layers.py",
        "    re.add_(t1).sub_(t2, alpha=sign)",
        "    re.add_(t1).add_(t2, alpha=sign)",
    ),
    "kernel truncation keeps too little": (
        "pcn/nn/morlet.py",
        "keep = magnitude > tolerance * magnitude.max()",
        "keep = magnitude > 1e3 * tolerance * magnitude.max()",
    ),
    "stratified split overlaps": (
        "pcn/data/splits.py",
        "train_idx.append(idx[n_test:])",
        "train_idx.append(idx[n_test - 1:])",
    ),
    "phase kept on the real part only": (
        "pcn/nn/nonlinearities.py",
        "return SplitFeatures(re=g * re, im=g * im)",
        "return SplitFeatures(re=g * re, im=im)",
    ),
    "non-finite steps go unnoticed": (
        "pcn/train/epoch.py",
        "new_bad = (first_bad < 0) & ~(loss_ok & grad_ok)",
        "new_bad = (first_bad < 0) & (loss_ok & ~loss_ok)",
    ),
    "a host read every step": (
        "pcn/train/epoch.py",
        "        count += n\n",
        "        count += n + 0 * int(loss.item())\n",
    ),
    "augmentation ignores the flip": (
        "pcn/data/augment.py",
        "flipped = torch.where(draws.flip.view(B, 1, 1, 1), images.flip(-1), images)",
        "flipped = images",
    ),
    "checkpoints unpickled unsafely": (
        "pcn/train/checkpoint.py",
        'obj = torch.load(path, map_location="cpu", weights_only=True)',
        'obj = torch.load(path, map_location="cpu", weights_only=False)',
    ),
    "unpaired differences": (
        "pcn/analysis/report.py",
        'diffs = [r["test_error_by_seed"][s] - ref["test_error_by_seed"][s] for s in common]',
        'diffs = [r["test_error_by_seed"][s] - ref["test_error_by_seed"][common[0]] for s in common]',
    ),
    "class-mean share not cross-fitted": (
        "pcn/analysis/separation.py",
        '"class_mean_share": float((p * (mu * nu)',
        '"class_mean_share": float((p * (mu * mu)',
    ),
    "verdict from the mean, not the interval": (
        "pcn/analysis/verdicts.py",
        '    if interval["low"] > 0:',
        '    if interval["mean"] > 0:',
    ),
    "journal obeys the store an entry names": (
        "pcn/tracking/journal.py",
        '    if entry.get("tracking_uri") != tracking_uri:',
        '    if entry.get("tracking_uri") is None:',
    ),
    "trend direction flipped": ("pcn/analysis/statistics.py", "    rises = change > 0", "    rises = change < 0"),
    "seeds do not change the data order": (
        "pcn/data/batches.py",
        "torch.Generator().manual_seed(seed + epoch)",
        "torch.Generator().manual_seed(epoch)",
    ),
}

#: name: the tests run first on the mutant (the quick suite runs whole if none of them fails)
GUARDS = {
    "modulus is the real part": "tests/nn/test_nonlinearities.py",
    "Morlet filters lose their zero mean": "tests/nn/test_morlet.py",
    "subsampled crop off by one": "tests/nn/test_wavelet.py",
    "standardization forgets the mean": "tests/nn/test_phase_collapse.py",
    "fused backward drops the statistics terms": "tests/nn/test_fused_projection.py",
    "Gauss product sign": "tests/nn/test_phase_collapse.py",
    "kernel truncation keeps too little": "tests/nn/test_morlet.py",
    "stratified split overlaps": "tests/data",
    "phase kept on the real part only": "tests/nn/test_nonlinearities.py",
    "non-finite steps go unnoticed": "tests/train/test_epoch.py",
    "a host read every step": "tests/train/test_epoch.py",
    "augmentation ignores the flip": "tests/data",
    "checkpoints unpickled unsafely": "tests/train/test_checkpoint.py",
    "unpaired differences": "tests/analysis/test_report.py",
    "class-mean share not cross-fitted": "tests/analysis/test_separation.py",
    "verdict from the mean, not the interval": "tests/analysis/test_claims.py",
    "journal obeys the store an entry names": "tests/tracking/test_journal.py",
    "trend direction flipped": "tests/analysis/test_statistics.py",
    "seeds do not change the data order": "tests/data/test_batches.py",
}


def copy_project(destination):
    """Every file git tracks in the checkout, at its place under ``destination``."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)


def quick_suite(project, tests="tests"):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", tests],
        cwd=project,
        capture_output=True,
        text=True,
        # a guard against a hung suite, not a speed check: the quick suite takes about 4 minutes alone on 2 cores,
        # 15 to 25 beside a training (900 s timed out there: a clean-clone CI beside the study, 2026-12-04)
        timeout=2700,
    )


def failures(result) -> list[str]:
    """The FAILED and ERROR lines of a pytest run's summary."""
    return [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]


@pytest.fixture(scope="module")
def unchanged_copy_passes(tmp_path_factory):
    """The quick suite, and each guard run alone, pass on an unchanged copy: only then does a mutant's failure
    mean it was caught (a guard that failed alone, by test order or shared state, would catch every mutant)."""
    project = tmp_path_factory.mktemp("unchanged")
    copy_project(project)
    for tests in ["tests", *sorted(set(GUARDS.values()))]:
        result = quick_suite(project, tests)
        assert result.returncode == 0, f"the unchanged copy fails {tests}\n{result.stdout[-1500:]}"


def test_every_mutant_names_the_tests_that_guard_it():
    assert set(GUARDS) == set(MUTANTS)
    assert all((ROOT / path).exists() for path in GUARDS.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MUTANTS))
def test_the_quick_suite_catches(name, tmp_path, unchanged_copy_passes):
    path, original, broken = MUTANTS[name]
    copy_project(tmp_path)
    source = (tmp_path / path).read_text()
    assert source.count(original) == 1, f"the mutation site of {name!r} is gone from {path}: update MUTANTS"
    (tmp_path / path).write_text(source.replace(original, broken))
    result = quick_suite(tmp_path, GUARDS[name])
    if not failures(result):
        result = quick_suite(tmp_path)
    caught = failures(result)
    assert result.returncode != 0 and caught, f"mutant not caught: {name}\n{result.stdout[-1500:]}"
    print(f"{name}: caught by {caught[0]}")
