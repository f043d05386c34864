"""Shared test helpers: where the shared reference data lives (``../shared/data``), the
paper's 2-2-2-2 network, a small CNN with every layer kind, and loaders of the shared MNIST networks and images (each skips
with the missing path in the reason when the shared folder is absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from common.threads import one_blas_thread

one_blas_thread()     # the suite is one job, as the commands are (common/threads.py)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_8_16 = SHARED_DATA / "models" / "mnist_784-8-16-10.h5"
MNIST_6X50 = SHARED_DATA / "models" / "mnist_784-50x6-10.h5"
MNIST_DATA = SHARED_DATA / "mnist" / "mnist_aigent_500.npz"


def paper_network():
    """METHOD.md worked example 1: W1 = [[1, 1], [-1, 2]], W2 = [[2, 3], [1, 1]],
    W3 = [[2, -8], [-4, 5]] (rows are target neurons), no biases, domain [0, 1]^2."""
    from ir.network import Domain, Linear, Network, ReLU
    return Network((Linear([[1, 1], [-1, 2]], [0, 0]), ReLU(),
                    Linear([[2, 3], [1, 1]], [0, 0]), ReLU(),
                    Linear([[2, -8], [-4, 5]], [0, 0])), Domain.box(2))


def require_shared(path: Path) -> Path:
    """``path`` inside the shared data, or a skip that names it."""
    if not path.exists():
        pytest.skip(f"shared reference data not found: {path}")
    return path


def load_shared_network(path: Path):
    """A shared network with the domain of its images, [0, 1] per value (the files hold
    none; on the command line it is --domain's default)."""
    from frontends import load_network
    from ir.network import Domain
    net = load_network(require_shared(path))
    return net if net.domain is not None else net.with_domain(Domain.box(net.n_inputs))


def load_mnist():
    """The 500 MNIST images of the shared data: ``(x (500, 784), y (500,))``."""
    from frontends.data import load_dataset
    return load_dataset(require_shared(MNIST_DATA))


def correctly_classified(net, x, y, n: int) -> np.ndarray:
    """Indices of the first ``n`` rows the network classifies correctly."""
    return np.flatnonzero(np.argmax(net(x), axis=1) == y)[:n]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips (with the path in the reason) when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA


def require_backend(name: str) -> None:
    """Skip (with the backend's own reason) when a solver is not usable here."""
    from backends import get_backend
    from common.errors import SolverUnavailable
    try:
        get_backend(name)
    except SolverUnavailable as err:
        pytest.skip(f"backend {name}: {err}")


def small_cnn(seed: int = 0):
    """8x8x2 NHWC: Conv2D 4 3x3 'same' + ReLU + MaxPool 2x2 + Conv2D 3 3x3 'same' + ReLU +
    Reshape + Linear 12 + ReLU + Linear 5 (sparse edge-layers 1-3, dense 4-5)."""
    from ir.network import Conv2D, Domain, Linear, MaxPool2D, Network, ReLU, Reshape
    rng = np.random.default_rng(seed)
    return Network((Conv2D(rng.normal(size=(4, 2, 3, 3)) * 0.5, rng.normal(size=4) * 0.1,
                           (1, 1), (1, 1, 1, 1)), ReLU(), MaxPool2D((2, 2), (2, 2)),
                    Conv2D(rng.normal(size=(3, 4, 3, 3)) * 0.3, rng.normal(size=3) * 0.1,
                           (1, 1), (1, 1, 1, 1)), ReLU(), Reshape((48,)),
                    Linear(rng.normal(size=(12, 48)) * 0.3, rng.normal(size=12) * 0.1), ReLU(),
                    Linear(rng.normal(size=(5, 12)), np.zeros(5))),
                   Domain.box(128), input_shape=(8, 8, 2), name="small_cnn")


def run_command(module: str, *argv, cwd: Path | None = None):
    """``python -m MODULE ARGV`` run in this process, from the project root: its exit code,
    stdout and stderr as a ``subprocess.CompletedProcess`` (a new interpreter per command
    cost the suite 0.3 s each).  An exception the command does not turn into a one-line
    error still escapes and fails the test."""
    import contextlib
    import importlib
    import io
    import os
    import subprocess
    main = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd or Path(__file__).resolve().parents[1])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in argv])
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess([module, *argv], code or 0, out.getvalue(),
                                       err.getvalue())
