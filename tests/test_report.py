"""evaluation.report: files written, Markdown content, PNGs readable with the right aspect."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from evaluation.metrics import summarize
from evaluation.report import (defect_detection_text, difference_image, fmt, image_grid,
                             success_curve, tradeoff_plot, write_report, x_scale)

PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def _record(success, status, stage="", pixels=None, adv_label=None):
    return {"index": 0, "label": 1, "success": success, "adv_label": adv_label, "target": adv_label,
            "pixels": pixels, "l2": None if pixels is None else 0.5 * pixels,
            "linf": None if pixels is None else 0.25,
            "compile_s": 1.0, "solve_s": 2.0, "total_s": 3.0, "status": status, "stage": stage,
            "reason": ""}


RECORDS = [_record(False, "skipped_misclassified"),
           _record(True, "validated", "done", pixels=2, adv_label=3),
           _record(True, "validated", "done", pixels=6, adv_label=5),
           _record(False, "infeasible", "patch edge-layer 1")]


def _read_png(path):
    """(height, width) of a PNG after checking its signature and reading it back."""
    import matplotlib.pyplot as plt
    assert path.read_bytes()[:8] == PNG_HEADER
    pixels = plt.imread(path)
    assert pixels.size > 0
    return pixels.shape[:2]


# --------------------------------------------------------------------------- report files

def test_importing_metrics_and_report_does_not_load_matplotlib():
    code = ("import sys, evaluation.metrics, evaluation.report; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_fmt_significant_digits():
    assert fmt(2 / 3) == "0.6667"
    assert fmt(12345.678) == "1.235e+04"
    assert fmt(7) == "7" and fmt(None) == "-"


def test_write_report_writes_json_and_markdown(tmp_path):
    summary = summarize(RECORDS, n_classes=10, n_inputs=784)
    config = {"strategy": "dnc", "backend": "highs", "eps": 0.1}
    json_path, md_path = write_report(tmp_path / "run", summary, config, "MNIST dnc")
    assert json.loads(json_path.read_text()) == {"config": config, "summary": summary}
    md = md_path.read_text()
    assert md.startswith("# MNIST dnc\n")
    assert "66.67 % (2 / 3)" in md
    assert "| strategy | dnc |" in md
    assert "| patch edge-layer 1: infeasible | 1 |" in md
    assert "| Pixels changed (mean / median / max) | 4 / 4 / 6 |" in md
    assert "0.7653 %" in md  # 6 of 784 pixels


def test_defect_detection_text_with_nothing_attempted():
    summary = summarize(RECORDS[:1], n_classes=10, n_inputs=784)
    assert defect_detection_text(summary) == "- (0 / 0)"


# --------------------------------------------------------------------------- figures

def test_difference_image_keeps_sign_of_largest_channel_change():
    delta = np.zeros((1, 2, 3))
    delta[0, 0] = [0.1, -0.4, 0.2]
    delta[0, 1] = [0.3, 0.0, 0.0]
    np.testing.assert_allclose(difference_image(delta), [[-0.4, 0.3]])


def _pairs(n, shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, int(np.prod(shape))))
    x_adv = x.copy()
    x_adv[:, :3] = 1.0 - x_adv[:, :3]
    return x, x_adv


@pytest.mark.parametrize("shape", [(28, 28), (8, 8), (32, 32, 3), (5,)])
def test_image_grid_eight_columns_is_wide(tmp_path, shape):
    x, x_adv = _pairs(10, shape)
    path = image_grid(tmp_path / "grid.png", x, x_adv, list(range(10)), [9] * 10, shape)
    height, width = _read_png(path)
    assert width > height


def test_image_grid_single_image(tmp_path):
    x, x_adv = _pairs(1, (32, 32, 3))
    path = image_grid(tmp_path / "one.png", x.reshape(1, 32, 32, 3), x_adv, [0], [1], (32, 32, 3))
    height, width = _read_png(path)
    assert height > width


def test_image_grid_without_images(tmp_path):
    empty = np.zeros((0, 784))
    path = image_grid(tmp_path / "none.png", empty, empty, [], [], (28, 28))
    height, width = _read_png(path)
    assert width > height   # the small landscape "no adversarial inputs" figure, not a grid


def test_success_curve_steps():
    k, share = success_curve([1, 2, 2, 5], n_attempted=8, k_max=6)
    np.testing.assert_array_equal(k, np.arange(7))
    np.testing.assert_allclose(share, [0, 12.5, 37.5, 37.5, 37.5, 50, 50])


def test_tradeoff_plot_writes_png(tmp_path):
    path = tradeoff_plot(tmp_path / "tradeoff.png", {"dnc": [1, 2, 2, 5], "direct": [3], "none": []},
                         {"dnc": 8, "direct": 8, "none": 0})
    height, width = _read_png(path)
    assert width > height


def test_tradeoff_plot_switches_to_log_scale_for_dense_attacks(tmp_path):
    assert x_scale(15) == "linear"
    assert x_scale(600) == "log"
    path = tradeoff_plot(tmp_path / "dense.png", {"dnc": [3, 9], "fgsm": [600, 700]},
                         {"dnc": 4, "fgsm": 4})
    height, width = _read_png(path)
    assert width > height


# --------------------------------------------------------------------------- pictures that explain themselves

def test_grid_texts_name_image_labels_and_pixels_and_say_when_cut():
    from evaluation.report import grid_labels
    heading, columns = grid_labels([7, 3], [9, 5], [2, 1], indices=[17, 40], total=19,
                                   title="dnc: net.h5 on data.npz")
    assert heading == "dnc: net.h5 on data.npz\nshowing 2 of 19 successes"
    assert columns[0] == ("image 17\ntrue label 7", "now classified 9", "2 pixels changed")
    assert columns[1] == ("image 40\ntrue label 3", "now classified 5", "1 pixel changed")
    assert grid_labels([1], [2], [3])[0] == "all 1 success"


def test_difference_scale_is_fixed_by_the_domain_not_the_data():
    from evaluation.report import difference_bound
    from evaluation.runs import domain_width
    from ir.network import Domain
    small, large = np.full(4, 0.05), np.array([0.0, -0.8, 0.3, 0.0])

    class Net:
        domain = Domain.box(4, 0.0, 1.0)
    width = domain_width(Net)
    assert width == 1.0
    assert difference_bound(small, width) == difference_bound(large, width) == 1.0
    assert difference_bound(large) == 0.8          # without a domain: the data's own range


def test_report_links_its_picture_explains_its_metrics_and_lists_failed_images():
    from evaluation.report import render_markdown
    summary = summarize(RECORDS, n_classes=10, n_inputs=784)
    failed = [{**RECORDS[3], "index": 12, "reason": "no patch of edge-layer 1 validates"}]
    md = render_markdown(summary, {}, "t", failed=failed,
                         figures={"examples.png": "originals, adversarial inputs, changes"})
    assert "![examples.png](examples.png)" in md
    assert "[examples.png](examples.png): originals, adversarial inputs, changes" in md
    for term in ("**Pielou impartiality**: H / ln K", "**% of input values**",
                 "re-simulated in float64"):
        assert term in md
    assert "| 12 | patch edge-layer 1 | infeasible | no patch of edge-layer 1 validates |" in md
