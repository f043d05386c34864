"""Transferability (evaluation.transfer): the balanced retraining mix, the Keras round trip,
seeded hardening, and the per-method shares, on the digits MLP.

The "adversarial" images are made here cheaply with numpy through the IR (FGSM and a targeted
iterated sign-gradient attack) and kept only where the original network misclassifies them.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from frontends import load_network
from ir.network import Domain
from frontends.data import load_dataset
from common.errors import DataError
from evaluation.transfer import harden, training_mix, transfer_table

ROOT = Path(__file__).resolve().parents[1]
DIGITS_NET = ROOT / "examples" / "digits" / "digits_mlp.keras"
DIGITS_DATA = ROOT / "examples" / "digits" / "digits_test.npz"
N_SOURCES = 120          # images attacked; the remaining 240 are the clean training data
EPS = 0.1                # L-inf budget of both test attacks


def loss_gradient(net, x, labels):
    """d cross-entropy(net(x), labels) / dx for a batch, backpropagated through the IR."""
    trace = net.simulate(x)
    z = trace.output
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = p
    g[np.arange(len(labels)), labels] -= 1.0
    for k in range(net.depth, 0, -1):
        edge = net.edge(k)
        if edge.relu:
            g = g * (trace.pre[k] > 0)
        g = g @ edge.linear.weight
    return g


def misclassified_only(net, x_adv, y):
    wrong = np.argmax(net(x_adv), axis=1) != y
    return x_adv[wrong], y[wrong]


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("keras")
    net = load_network(DIGITS_NET)
    x, y = load_dataset(DIGITS_DATA)
    return net.with_domain(Domain.box(net.n_inputs)), x, y


@pytest.fixture(scope="module")
def adversarial(digits):
    """Two methods with validated (misclassified) images, labelled with the true label, and
    one method that found none."""
    net, x, y = digits
    xs, ys = x[:N_SOURCES], y[:N_SOURCES]
    fgsm = net.domain.clip(xs + EPS * np.sign(loss_gradient(net, xs, ys)))
    target, pgd = (ys + 1) % net.n_outputs, xs.copy()
    for _ in range(10):
        pgd = pgd - EPS / 4 * np.sign(loss_gradient(net, pgd, target))
        pgd = net.domain.clip(np.clip(pgd, xs - EPS, xs + EPS))
    sets = {"fgsm": misclassified_only(net, fgsm, ys),
            "pgd": misclassified_only(net, pgd, ys),
            "none": (np.zeros((0, net.n_inputs)), np.zeros(0, dtype=np.int64))}
    assert 10 <= len(sets["pgd"][0]) < len(sets["fgsm"][0])     # unequal, so balancing matters
    return sets


@pytest.fixture(scope="module")
def clean(digits):
    _, x, y = digits
    return x[N_SOURCES:], y[N_SOURCES:]


@pytest.fixture(scope="module")
def hardened(digits, clean, adversarial):
    net = digits[0]
    return harden(net, *clean, adversarial, seed=0, epochs=20)


def same_weights(a, b) -> bool:
    return all(np.array_equal(ea.linear.weight, eb.linear.weight)
               and np.array_equal(ea.linear.bias, eb.linear.bias)
               for ea, eb in zip(a.edges, b.edges, strict=True))


# ---- the training mix ----------------------------------------------------------------------
def test_mix_is_balanced_labelled_and_keeps_all_clean_data(digits, clean, adversarial):
    net = digits[0]
    x_clean, y_clean = clean
    n_pgd = len(adversarial["pgd"][0])
    x_mix, y_mix = training_mix(net, x_clean, y_clean, adversarial, np.random.default_rng(0))
    assert len(x_mix) == len(x_clean) + 2 * n_pgd        # smallest non-empty method, twice

    def rows_from(x_set):
        return {row.tobytes() for row in x_set}
    clean_rows, fgsm_rows, pgd_rows = (rows_from(clean[0]), rows_from(adversarial["fgsm"][0]),
                                       rows_from(adversarial["pgd"][0]))
    labels = {}
    for x_set, y_set in (clean, adversarial["fgsm"], adversarial["pgd"]):
        labels.update({row.tobytes(): int(label) for row, label in zip(x_set, y_set)})
    mixed = [row.tobytes() for row in x_mix]
    assert sum(r in clean_rows for r in mixed) == len(x_clean)
    assert sum(r in fgsm_rows for r in mixed) == n_pgd
    assert sum(r in pgd_rows for r in mixed) == n_pgd
    assert len(set(mixed)) == len(mixed)                  # sampled without replacement
    assert [labels[r] for r in mixed] == y_mix.tolist()   # every image keeps its true label
    assert not np.array_equal(y_mix[:len(y_clean)], y_clean)   # shuffled


def test_mix_is_seeded_and_independent_of_dict_order(digits, clean, adversarial):
    net = digits[0]
    a = training_mix(net, *clean, adversarial, np.random.default_rng(7))
    b = training_mix(net, *clean, dict(reversed(adversarial.items())), np.random.default_rng(7))
    c = training_mix(net, *clean, adversarial, np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_mix_per_method(digits, clean, adversarial):
    net = digits[0]
    x_mix, _ = training_mix(net, *clean, adversarial, np.random.default_rng(0), per_method=5)
    assert len(x_mix) == len(clean[0]) + 2 * 5
    too_many = len(adversarial["pgd"][0]) + 1
    with pytest.raises(ValueError, match="per_method"):
        training_mix(net, *clean, adversarial, np.random.default_rng(0), per_method=too_many)
    with pytest.raises(DataError, match="'fgsm'"):
        bad = dict(adversarial, fgsm=(adversarial["fgsm"][0], adversarial["fgsm"][1] + 10))
        training_mix(net, *clean, bad, np.random.default_rng(0))


# ---- Keras round trip and seeded retraining ---------------------------------------------
def test_keras_round_trip_reproduces_the_logits(digits):
    from evaluation.keras_model import from_keras, to_keras
    net, x, _ = digits
    model = to_keras(net, input_shape=(net.n_inputs,))
    keras_logits = np.asarray(model(x.astype(np.float32)), dtype=np.float64)
    assert np.max(np.abs(keras_logits - net(x))) < 1e-5
    back = from_keras(model, net)
    assert np.max(np.abs(back(x) - net(x))) < 1e-5
    assert back.domain.lower.tolist() == net.domain.lower.tolist()


def test_harden_is_reproducible_and_seed_dependent(digits, clean, adversarial):
    net = digits[0]
    first = harden(net, *clean, adversarial, seed=3, epochs=2)
    again = harden(net, *clean, adversarial, seed=3, epochs=2)
    other = harden(net, *clean, adversarial, seed=4, epochs=2)
    assert same_weights(first, again)
    assert not same_weights(first, other)
    assert not same_weights(first, net)                   # it did train
    assert first.widths() == net.widths() and first.name == f"{net.name}_hardened"


# ---- the table ---------------------------------------------------------------------------
def test_table_shares_match_a_hand_count(digits, adversarial, hardened):
    net = digits[0]
    table = transfer_table(net, hardened, adversarial)
    assert list(table) == list(adversarial)
    for name, (x_adv, labels) in adversarial.items():
        row = table[name]
        assert row["n"] == len(x_adv)
        if len(x_adv) == 0:
            assert row["still_misclassified"] is None and row["original_misclassified"] is None
            continue
        still = sum(int(np.argmax(hardened(x))) != int(label) for x, label in zip(x_adv, labels))
        before = sum(int(np.argmax(net(x))) != int(label) for x, label in zip(x_adv, labels))
        assert row["still_misclassified"] == pytest.approx(still / len(x_adv), abs=0)
        assert row["original_misclassified"] == pytest.approx(before / len(x_adv), abs=0)
        assert row["original_misclassified"] == 1.0        # validated adversarials


def test_hardening_learns_the_adversarial_images(digits, clean, adversarial, hardened):
    net = digits[0]
    table = transfer_table(net, hardened, adversarial)
    assert table["fgsm"]["still_misclassified"] < 1.0
    # every pgd image is in the mix (it is the smallest method): most are learned
    assert table["pgd"]["still_misclassified"] <= 0.5
    x_clean, y_clean = clean
    assert np.mean(np.argmax(hardened(x_clean), axis=1) == y_clean) >= 0.9   # still accurate


def test_importing_transfer_does_not_import_tensorflow():
    code = ("import sys, evaluation.transfer; "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]
