"""netpatch bench's table (evaluation/bench.py), without the baselines: --limit means the first
N rows (as in netpatch attack), a bench into an existing folder adds its methods to the
table, a table of other images is refused, and no Frechet distance from fewer than 10 images."""
from __future__ import annotations

import json

import numpy as np

from frontends import load_network
from netpatch.cli import main as netpatch

DIGITS = "examples/digits/digits_mlp.keras"
DIGITS_DATA = "examples/digits/digits_test.npz"


def bench(out, methods, limit=20, *extra) -> int:
    return netpatch(["bench", DIGITS, "--data", DIGITS_DATA, "--methods", methods, "--limit",
                     str(limit), "--max-pixels", "10", "--out", str(out), *extra])


def test_a_second_bench_adds_its_methods_and_limit_counts_rows(tmp_path, capsys):
    from frontends.data import load_dataset
    out = tmp_path / "bench"
    assert bench(out, "netpatch-direct") == 0
    assert "netpatch-direct: [" in capsys.readouterr().err   # progress, not a terminal: lines
    assert bench(out, "netpatch-dnc", 20, "--quiet") == 0
    assert capsys.readouterr().err == ""                     # --quiet: no progress at all
    table = json.loads((out / "table.json").read_text())
    assert list(table["methods"]) == ["netpatch-direct", "netpatch-dnc"]
    net = load_network(DIGITS)
    x, y = load_dataset(DIGITS_DATA)
    correct = np.flatnonzero(np.argmax(net(x[:20]), axis=1) == y[:20])
    assert table["rows"] == 20 and table["images"] == len(correct) < 20
    assert np.array_equal(np.load(out / "images.npz")["source_index"], correct)
    for method in table["methods"].values():
        assert method["attempted"] == len(correct)
    md = (out / "table.md").read_text()
    assert md.startswith(f"# digits_mlp.keras: the first 20 rows of digits_test.npz; the "
                         f"{len(correct)} correctly classified among them")
    assert "| netpatch-direct |" in md and "| netpatch-dnc |" in md
    assert "![trade-off](tradeoff.png)" in md and "[report](netpatch-dnc/report.md)" in md
    assert "**Frechet (penultimate)**" in md and "**Pielou**" in md

    before = (out / "table.json").read_text()
    assert bench(out, "netpatch-direct", 10) == 2            # other rows: refused, unchanged
    err = capsys.readouterr().err
    assert err.startswith("netpatch bench: error: ") and "limit" in err
    assert (out / "table.json").read_text() == before


def test_no_frechet_distance_from_fewer_than_ten_images(tmp_path):
    from evaluation.bench import MIN_FRECHET_IMAGES, method_row
    net = load_network(DIGITS)
    rng = np.random.default_rng(0)
    for n, has_distance in ((MIN_FRECHET_IMAGES - 1, False), (MIN_FRECHET_IMAGES, True)):
        run = tmp_path / str(n)
        run.mkdir()
        (run / "report.json").write_text(json.dumps({"summary": {"successes": n}}))
        x = rng.random((n, 64))
        np.savez(run / "adversarial.npz", index=np.arange(n), x=x, x_adv=np.clip(x + 0.3, 0, 1))
        fd = method_row(net, run)["frechet"]
        assert (fd is not None) == has_distance
        assert fd is None or fd > 0
