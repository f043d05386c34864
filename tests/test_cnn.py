"""Convolutional networks end to end: max pooling in the problem IR (a hand-derived patch
optimum through every phase mode and backend), the linearized pull-back through convolutions,
and attacks on the shared CNNs, every success checked by running the original network."""
from __future__ import annotations

import numpy as np
import pytest

from attacks import AttackConfig, DncConfig, attack
from attacks.patching import PatchRequest, patch_layer
from attacks.validate import count_pixels
from compiler.analysis.pullback import input_function
from compiler.passes import PassOptions
from conftest import SHARED_DATA, load_mnist, load_shared_network, require_backend, require_shared
from ir.layers import Conv2D, Linear, MaxPool2D, ReLU, Reshape
from ir.network import Domain, Network
from ir.property import ArgmaxIsNot, Conjunction, beats, targeted_candidates

MNIST_CNN = SHARED_DATA / "models" / "mnist_cnn_4conv.h5"
CIFAR_CNN = SHARED_DATA / "models" / "cifar_cnn_4conv.h5"
CIFAR_DATA = SHARED_DATA / "cifar10" / "cifar10_test_100.npz"


def pooled_network() -> Network:
    """x (2) -> z = W1 x (4) viewed as 2x2 -> max over each row (2) -> y = W2 p.

    W1 = [[1, 0], [0, 1], [0, 1], [1, 0]], W2 = [[1, 0], [0, -1]], no biases; at x = (1, 0):
    z = (1, 0, 0, 1), p = (max(1, 0), max(0, 1)) = (1, 1), y = (1, -1).
    """
    return Network((Linear([[1, 0], [0, 1], [0, 1], [1, 0]], np.zeros(4)), Reshape((2, 2, 1)),
                    MaxPool2D((1, 2), (1, 2)), Reshape((2,)),
                    Linear([[1, 0], [0, -1]], np.zeros(2))), Domain.box(2, -2, 2))


def conv_pooled_network() -> Network:
    """The same behind a convolution: x (1, 2, 1) -> 1x1 Conv2D of weight 1 -> ReLU ->
    flatten -> the layers of ``pooled_network``.  At x = (1, 0) the convolution passes (1, 0)
    through, so the dense layer patched (edge-layer 2) sees the source a = (1, 0) again."""
    dense = pooled_network()
    return Network((Conv2D(np.ones((1, 1, 1, 1)), np.zeros(1)), ReLU(), Reshape((2,)))
                   + dense.layers, Domain.box(2, -2, 2), (1, 2, 1))


@pytest.mark.parametrize("make, layer", [(pooled_network, 1), (conv_pooled_network, 2)])
@pytest.mark.parametrize("backend", ["highs", "pyomo-highs", "z3"])
@pytest.mark.parametrize("phases", ["linearized", "region", None])
@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_patch_through_max_pooling_hand_optimum(make, layer, backend, phases, margin):
    """Patch edge-layer 1 so that y1 >= y0 + m.  The source is a = x = (1, 0), so the change
    of z_j is d_j = eps_j0 with |d_j| <= M.  y1 - y0 = -(p0 + p1) with p0 = max(1 + d0, d1) and
    p1 = max(d2, 1 + d3), each at least 1 - M: so -(2 - 2M) >= m, M* = 1 + m/2 in every phase
    mode.  Region and free phases are exact, so their patch holds on the real network; the
    linearized model ignores the losers d1, d2, which an optimal patch may raise above the
    winners (then the real network rejects it: a candidate, not an answer)."""
    require_backend(backend)
    net = make()
    x = np.array([1.0, 0.0])
    np.testing.assert_allclose(net(x), [1.0, -1.0])
    outcome = patch_layer(PatchRequest(net, layer, x, Conjunction((beats(1, 0, margin),)), backend,
                                       PassOptions(phase_fixing=phases, sign_pruning=False),
                                       relinearize=0))
    assert outcome.status.value == "optimal"
    assert outcome.objective == pytest.approx(1 + margin / 2, abs=1e-7)
    y = net.with_patch(layer, outcome.eps)(x)
    assert outcome.validated == (y[1] >= y[0] + margin - 1e-9)
    if phases != "linearized":
        assert outcome.validated
    if phases is None and backend != "z3":   # free max pooling: lowered with binaries
        assert any(r["binaries"] > 0 for r in outcome.sizes)


def small_cnn(seed=0) -> Network:
    rng = np.random.default_rng(seed)
    return Network((Conv2D(rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3) * 0.1, (1, 1),
                           (1, 1, 1, 1), "NHWC"), ReLU(), MaxPool2D((2, 2), (2, 2)),
                    Conv2D(rng.normal(size=(4, 3, 2, 2)), rng.normal(size=4) * 0.1), ReLU(),
                    Reshape((36,)), Linear(rng.normal(size=(5, 36)), rng.normal(size=5)), ReLU(),
                    Linear(rng.normal(size=(3, 5)), np.zeros(3))),
                   Domain.box(8 * 8 * 2), (8, 8, 2))


def test_the_linear_model_at_a_point_is_exact_there_and_near_it():
    """input_function linearizes through convolutions, ReLUs and max pooling: at x it gives
    the network's outputs, and for a change small enough to keep every phase, exactly the
    network's change."""
    net = small_cnn()
    rng = np.random.default_rng(1)
    x = rng.uniform(size=net.n_inputs)
    target = Conjunction((beats(1, 0, 0.0), beats(2, 0, 0.0)))
    gains, offsets = input_function(net, target, net.phases(x))
    y = net(x)
    np.testing.assert_allclose(gains @ x + offsets, [y[1] - y[0], y[2] - y[0]], atol=1e-12)
    step = 1e-7 * rng.normal(size=net.n_inputs)
    assert all(np.array_equal(a, b) for a, b in zip(net.phases(x + step), net.phases(x)))
    y2 = net(x + step)
    np.testing.assert_allclose(gains @ (x + step) + offsets, [y2[1] - y2[0], y2[2] - y2[0]],
                               atol=1e-12)


def test_colour_pixels_are_positions():
    net = load_shared_network(CIFAR_CNN)
    delta = np.zeros(net.n_inputs)
    delta[[0, 1, 2, 3, 3000]] = 0.1         # (0,0) all channels, (0,1) one channel, one more
    assert count_pixels(net, delta) == 3
    assert load_shared_network(MNIST_CNN).pixel_groups() is None   # grayscale: values


@pytest.mark.parametrize("strategy, images", [("dnc", (6, 7)), ("direct", (0, 1))])
def test_attacks_on_the_mnist_cnn_are_validated(strategy, images):
    """dnc patches the two dense edge-layers and pulls the first one's target back through
    the convolutions (images 6 and 7 succeed in its first tier, L-inf patches: escalation
    and growing are off to keep the test fast); direct grows the changed pixels."""
    net = load_shared_network(MNIST_CNN)
    x, y = load_mnist()
    for i in images:
        assert int(np.argmax(net(x[i]))) == y[i]
        config = AttackConfig(linf=1.0, max_pixels=15, strategy=strategy,
                              dnc=DncConfig(escalate=False, grow=False))
        result = attack(net, x[i], int(y[i]), config)
        assert result.success, (i, result.status, result.reason)
        assert result.tier == ("linf" if strategy == "dnc" else "")
        assert int(np.argmax(net(result.x_adv))) == result.adv_label != y[i]
        assert net.domain.contains(result.x_adv)
        assert 0 < np.count_nonzero(result.x_adv - x[i]) <= 15


def test_direct_on_the_cifar_cnn_counts_positions():
    from frontends.data import load_dataset
    net = load_shared_network(CIFAR_CNN)
    x, y = load_dataset(require_shared(CIFAR_DATA))
    i = int(np.flatnonzero(np.argmax(net(x), axis=1) == y)[0])
    result = attack(net, x[i], int(y[i]), AttackConfig(max_pixels=12, strategy="direct"))
    assert result.success
    assert int(np.argmax(net(result.x_adv))) != y[i]
    assert count_pixels(net, result.x_adv - x[i]) <= 12
    # the first target class's pulled-back row is a function of all 3072 values
    _, conj = targeted_candidates(ArgmaxIsNot(int(y[i])), net(x[i]))[0]
    gains, _ = input_function(net, conj, net.phases(x[i]))
    assert gains.shape == (1, 3072)


def test_exact_says_when_the_milp_is_too_large():
    """The MNIST CNN keeps 35,508 phases undecided at 14 pixels (beyond the default 5,000);
    the same guard, with a small limit, on the 8-16 network keeps the test fast."""
    from attacks import ExactConfig
    from conftest import MNIST_8_16
    net = load_shared_network(MNIST_8_16)
    x, y = load_mnist()
    result = attack(net, x[0], int(y[0]), AttackConfig(max_pixels=15, strategy="exact",
                                                       exact=ExactConfig(max_free=3)))
    assert result.status in ("feasible", "error") and "too large for the exact MILP" in result.reason
    if result.success:     # direct's answer, validated, with no optimality claimed
        assert int(np.argmax(net(result.x_adv))) != y[0]
