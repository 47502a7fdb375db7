"""Separation metrics against independent computations (scikit-learn, NumPy two-pass)."""
import numpy as np
import pytest
import torch

from pcn.analysis.separation import ClassStatistics, NearestMeanCounter, feature_vectors, layer_separation

sklearn_neighbors = pytest.importorskip("sklearn.neighbors")


def numpy_reference(x: np.ndarray, y: np.ndarray) -> dict:
    classes = np.unique(y)
    n = len(y)
    means = np.stack([x[y == c].mean(0) for c in classes])
    p = np.array([(y == c).mean() for c in classes])
    var = np.array([((x[y == c] - means[i]) ** 2).sum(1).mean() for i, c in enumerate(classes)])
    mu = x.mean(0)
    tr_w = sum(((x[y == c] - means[i]) ** 2).sum() for i, c in enumerate(classes)) / n
    tr_b = (p * ((means - mu) ** 2).sum(1)).sum()
    pairs = [(var[i] + var[j]) / (2 * ((means[i] - means[j]) ** 2).sum())
             for i in range(len(classes)) for j in range(i + 1, len(classes))]
    return {"fisher_ratio": tr_b / tr_w, "trace_within": tr_w, "trace_between": tr_b, "cdnv": np.mean(pairs),
            "mean_energy_ratio": (p * (means ** 2).sum(1)).sum() / (x ** 2).sum(1).mean()}


def test_streaming_statistics_match_two_pass_numpy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 500)
    x = rng.normal(size=(500, 12)) * (1 + y[:, None]) + 100 + 3 * y[:, None]   # large offset: cancellation risk
    stats = ClassStatistics(5, 12)
    for chunk in np.array_split(np.arange(500), 7):                              # streamed in uneven batches
        stats.update(torch.tensor(x[chunk], dtype=torch.float32), torch.tensor(y[chunk]))
    expected = numpy_reference(x.astype(np.float32).astype(np.float64), y)
    got = stats.measures()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6), key


def test_ncm_matches_sklearn_nearest_centroid():
    rng = np.random.default_rng(1)
    y_train, y_test = rng.integers(0, 4, 300), rng.integers(0, 4, 200)
    centres = rng.normal(size=(4, 6)) * 1.5
    x_train = centres[y_train] + rng.normal(size=(300, 6))
    x_test = centres[y_test] + rng.normal(size=(200, 6))
    stats = ClassStatistics(4, 6)
    stats.update(torch.tensor(x_train), torch.tensor(y_train))
    counter = NearestMeanCounter(stats.means())
    counter.update(torch.tensor(x_test), torch.tensor(y_test))
    clf = sklearn_neighbors.NearestCentroid().fit(x_train, y_train)
    assert counter.accuracy() == pytest.approx(clf.score(x_test, y_test))
    assert 0.4 < counter.accuracy() < 1.0


def test_known_answer():
    """Two classes at +-m with isotropic noise sigma in D dims: Tr B = D m^2, Tr W = D sigma^2."""
    rng = np.random.default_rng(2)
    m, sigma, d, n = 2.0, 0.5, 4, 20000
    y = np.repeat([0, 1], n)
    x = np.where(y[:, None] == 0, -m, m) + sigma * rng.normal(size=(2 * n, d))
    stats = ClassStatistics(2, d)
    stats.update(torch.tensor(x), torch.tensor(y))
    r = stats.measures()
    assert r["fisher_ratio"] == pytest.approx(m ** 2 / sigma ** 2, rel=0.02)
    assert r["cdnv"] == pytest.approx(2 * d * sigma ** 2 / (2 * 4 * d * m ** 2), rel=0.02)
    assert r["mean_energy_ratio"] == pytest.approx(m ** 2 / (m ** 2 + sigma ** 2), rel=0.01)


def test_zero_class_means_give_zero_energy_ratio():
    """Phase-symmetric data (z and -z equally likely) has zero class means."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 8))
    x = np.concatenate([x, -x])
    y = np.concatenate([np.arange(1000) % 3] * 2)
    stats = ClassStatistics(3, 8)
    stats.update(torch.tensor(x), torch.tensor(y))
    assert stats.measures()["mean_energy_ratio"] < 1e-20


def test_layer_separation_end_to_end():
    torch.manual_seed(0)
    images = torch.randn(60, 2, 4, 4) + torch.arange(3).repeat(20).view(-1, 1, 1, 1).float()
    labels = torch.arange(3).repeat(20)
    loader = [(images[i:i + 16], labels[i:i + 16]) for i in range(0, 60, 16)]
    rows = layer_separation(lambda x: [x, 2 * x], loader, loader, 3, "spatial_mean", torch.device("cpu"))
    assert len(rows) == 2 and rows[0]["ncm_accuracy"] == rows[1]["ncm_accuracy"] > 0.9
    assert rows[0]["fisher_ratio"] == pytest.approx(rows[1]["fisher_ratio"])   # scale invariant
    assert feature_vectors(images[:2], "flatten").shape == (2, 32)
    with pytest.raises(ValueError, match="valid: spatial_mean, flatten"):
        feature_vectors(images, "pool")


def _sharded_statistics(rank: int, world: int, port: int, x, y, out) -> None:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    stats = ClassStatistics(3, x.shape[1])
    stats.update(x[rank::world], y[rank::world])
    stats.all_reduce()
    counter = NearestMeanCounter(stats.means())
    counter.update(x[rank::world], y[rank::world])
    counter.all_reduce()
    if rank == 0:
        out.put((stats.measures(), counter.accuracy()))
    dist.destroy_process_group()


def test_statistics_reduced_across_ranks_equal_single_process():
    import multiprocessing as mp
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.manual_seed(0)
    y = torch.arange(101) % 3
    x = torch.randn(101, 5, dtype=torch.float64) + y[:, None].double()
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_sharded_statistics, args=(r, 2, port, x, y, queue)) for r in range(2)]
    for p in procs:
        p.start()
    reduced, accuracy = queue.get(timeout=120)
    for p in procs:
        p.join(timeout=60)
    single = ClassStatistics(3, 5)
    single.update(x, y)
    counter = NearestMeanCounter(single.means())
    counter.update(x, y)
    assert accuracy == pytest.approx(counter.accuracy())
    for key, value in single.measures().items():
        assert reduced[key] == pytest.approx(value, rel=1e-12), key


def test_too_few_training_samples_for_every_class_is_refused_by_name():
    import torch

    from pcn.analysis.separation import layer_separation
    x = torch.randn(40, 2, 2, 2)
    labels = torch.arange(40) // 10                                       # sorted by class, as the data are
    batches = [(x[i:i + 8], labels[i:i + 8]) for i in range(0, 40, 8)]
    with pytest.raises(ValueError, match=r"first 12 training images hold no image of classes \[2, 3\].*"
                                         r"evaluate\.max_train_samples"):
        layer_separation(lambda im: [im], batches, batches, 4, "flatten", torch.device("cpu"), max_train_samples=12)
    assert len(layer_separation(lambda im: [im], batches, batches, 4, "flatten", torch.device("cpu"))) == 1
