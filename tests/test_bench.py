"""Baselines (ART) and ``netpatch bench``: every counted success re-validates on the
original network, inside the domain; tables and pictures are written; Table III numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import SHARED_DATA, load_shared_network
from frontends import load_network
from frontends.data import load_dataset
from netpatch.cli import main as netpatch

pytest.importorskip("art", reason="baselines need the [baselines] extra")

MNIST_8_16 = SHARED_DATA / "models" / "mnist_784-8-16-10.h5"
MNIST_DATA = SHARED_DATA / "mnist" / "mnist_aigent_500.npz"
DIGITS = "examples/digits/digits_mlp.keras"
DIGITS_DATA = "examples/digits/digits_test.npz"


def adversarial_rows(x, records):
    """x + each record's changes, as the records claim them."""
    rows = []
    for r in records:
        row = x[r["index"]].copy()
        for j, value in r["changes"]:
            row[j] = value
        rows.append(row)
    return np.array(rows)


@pytest.fixture(scope="module")
def small_mnist(shared_data):
    net = load_shared_network(MNIST_8_16)
    x, y = load_dataset(MNIST_DATA)
    keep = np.flatnonzero(np.argmax(net(x), axis=1) == y)[:4]
    return net, x[keep], y[keep]


@pytest.mark.parametrize("method", ["fgsm", "pgd", "deepfool", "jsma", "cw", "boundary", "pixel"])
def test_baseline_successes_revalidate_inside_the_domain(small_mnist, method):
    from evaluation.baselines import BaselineConfig, run_baseline
    net, x, y = small_mnist
    records = run_baseline(method, net, x, y, BaselineConfig(eps=0.1, max_pixels=15), (28, 28, 1))
    assert [r["index"] for r in records] == list(range(len(x)))
    wins = [r for r in records if r["success"]]
    for r in records:
        assert r["label"] == y[r["index"]]
    for r in records:   # a failure claims nothing: no label, no metrics, no changes
        if not r["success"]:
            assert r["adv_label"] is None and r["pixels"] is None and r["changes"] == []
            assert int(np.argmax(net(adversarial_rows(x, [r])[0]))) == r["label"]
    if method != "pixel":   # the pixel attack may fail everywhere on MNIST
        assert wins, f"{method} found no adversarial input on 4 images"
    x_adv = adversarial_rows(x, wins) if wins else np.zeros((0, x.shape[1]))
    assert net.domain.contains(x_adv)
    predicted = np.argmax(net(x_adv), axis=1)
    for r, p, row in zip(wins, predicted, x_adv):
        assert p == r["adv_label"] != r["label"]
        delta = row - x[r["index"]]
        assert r["pixels"] == np.count_nonzero(delta)
        assert r["linf"] == pytest.approx(np.max(np.abs(delta)))
    if method in ("fgsm", "pgd"):
        assert max(r["linf"] for r in wins) <= 0.1 + 1e-6


def test_jsma_keeps_the_fewest_pixels_over_targets(small_mnist):
    # The best over all targets is never worse than the single target tried first.
    from art.attacks.evasion import SaliencyMapMethod
    from evaluation.baselines import BaselineConfig, classifier, run_baseline
    net, x, y = small_mnist
    records = run_baseline("jsma", net, x, y, BaselineConfig(), (28, 28, 1))
    clf = classifier(net, (28, 28, 1))
    x32 = x.reshape(-1, 28, 28, 1).astype(np.float32)
    target = (y + 1) % 10
    one = SaliencyMapMethod(clf, theta=1.0, gamma=0.1, verbose=False).generate(
        x32, y=np.eye(10)[target]).reshape(len(x), -1)
    for i, r in enumerate(records):
        if np.argmax(net(one[i].astype(np.float64))) != y[i]:
            assert r["success"]
            assert r["pixels"] <= np.count_nonzero(one[i] != x32[i].ravel())


def test_bench_writes_table_plot_and_grids_and_resumes(tmp_path):
    out = tmp_path / "bench"
    argv = ["bench", DIGITS, "--data", DIGITS_DATA, "--methods", "netpatch-direct,fgsm",
            "--limit", "6", "--max-pixels", "10", "--transfer", "--epochs", "1", "--out", str(out)]
    assert netpatch(argv) == 0
    table = json.loads((out / "table.json").read_text())
    assert set(table["methods"]) == {"netpatch-direct", "fgsm"}
    net = load_network(DIGITS)
    x, y = load_dataset(DIGITS_DATA)
    for method, summary in table["methods"].items():
        records = [json.loads(line) for line in (out / method / "results.jsonl").read_text().splitlines()]
        assert summary["attempted"] == len(records) == 6
        assert summary["successes"] == sum(r["success"] for r in records)
        images = np.load(out / "images.npz")
        wins = [r for r in records if r["success"]]
        if wins:
            x_adv = adversarial_rows(images["x"], wins)
            assert np.all(np.argmax(net(x_adv), axis=1) != images["y"][[r["index"] for r in wins]])
        assert (out / method / "examples.png").stat().st_size > 0
    assert (out / "tradeoff.png").stat().st_size > 0
    assert "| netpatch-direct |" in (out / "table.md").read_text()
    transfer = json.loads((out / "transfer.json").read_text())["methods"]
    for method, row in transfer.items():   # the held-out half of each method's successes
        n_wins = table["methods"][method]["successes"]
        assert row["n"] == n_wins - n_wins // 2
        assert row["original_misclassified"] in (None, 1.0)
    before = (out / "fgsm" / "results.jsonl").read_text()
    assert netpatch(argv) == 0          # a rerun resumes: nothing is attacked twice
    assert (out / "fgsm" / "results.jsonl").read_text() == before


def test_bench_unknown_method_is_a_clear_error(tmp_path, capsys):
    assert netpatch(["bench", DIGITS, "--data", DIGITS_DATA, "--methods", "fgsm,deepxplore",
                     "--out", str(tmp_path)]) == 2
    assert "deepxplore" in capsys.readouterr().err


def test_patch_table_on_acas_last_layer_is_the_known_optimum(shared_data, tmp_path):
    # METHOD.md: the ACAS Xu 2_9 last-layer L1 optimum for row 0 is 0.0010340.
    argv = ["bench", str(shared_data / "acasxu" / "ACASXU_2_9.json"), "--data",
            str(shared_data / "acasxu" / "inputs.csv"), "--patch-table", "--index", "0",
            "--property", "argmin(y) == 0 by 0.001", "--out", str(tmp_path)]
    assert netpatch(argv) == 0
    table = json.loads((tmp_path / "patch_table.json").read_text())
    assert sorted(table, key=int) == [str(k) for k in range(1, 8)]
    last = table["7"]["no sign pruning"]
    assert last["status"] == "optimal" and last["validated"]
    assert last["l1"] == pytest.approx(0.0010340285, abs=1e-9)
    for row in table.values():   # sign pruning restricts the problem: never a smaller patch
        pruned, free = row["sign pruning"], row["no sign pruning"]
        if pruned["l1"] is not None and free["l1"] is not None:
            assert free["l1"] <= pruned["l1"] + 1e-9

