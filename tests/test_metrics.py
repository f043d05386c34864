"""evaluation.metrics against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.metrics import failure_key, frechet_distance, l0, l2, linf, pielou, summarize


# --------------------------------------------------------------------------- Pielou

@pytest.mark.parametrize("k", [2, 3, 10])
def test_pielou_uniform_is_one(k):
    assert pielou(list(range(k)) * 4, k) == pytest.approx(1.0)


def test_pielou_single_class_and_empty_are_zero():
    assert pielou([7, 7, 7], 10) == 0.0
    assert pielou([], 10) == 0.0


def test_pielou_hand_computed():
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    assert pielou([0, 0, 1], 3) == pytest.approx(h / math.log(3))


def test_pielou_normalises_by_all_classes_not_present_ones():
    assert pielou([0, 1], 4) == pytest.approx(math.log(2) / math.log(4))


@pytest.mark.parametrize("k", [0, 1])
def test_pielou_degenerate_class_count_is_zero(k):
    assert pielou([0, 0], k) == 0.0


def test_pielou_rejects_label_out_of_range():
    with pytest.raises(ValueError, match="outside"):
        pielou([0, 3], 3)


# --------------------------------------------------------------------------- norms

DELTA = np.array([[0.0, 3.0, -4.0], [0.5, 0.0, 0.0], [0.0, 0.0, 0.0]])


def test_norms_per_row():
    np.testing.assert_array_equal(l0(DELTA), [2, 1, 0])
    np.testing.assert_allclose(l2(DELTA), [5.0, 0.5, 0.0])
    np.testing.assert_allclose(linf(DELTA), [4.0, 0.5, 0.0])


def test_norms_of_a_vector_are_scalars():
    v = np.array([1.0, -2.0, 0.0, 2.0])
    assert l0(v) == 3 and isinstance(l0(v), int)
    assert l2(v) == pytest.approx(3.0)
    assert linf(v) == pytest.approx(2.0)


def test_norms_flatten_image_batches():
    batch = np.zeros((2, 2, 2, 3))
    batch[0, 1, 1, 2] = -0.25
    batch[1] = 0.5
    np.testing.assert_array_equal(l0(batch), [1, 12])
    np.testing.assert_allclose(linf(batch), [0.25, 0.5])
    np.testing.assert_allclose(l2(batch), [0.25, 0.5 * math.sqrt(12)])


def test_l0_tolerance_ignores_tiny_changes():
    assert l0(np.array([1e-12, 0.1, 0.0]), tol=1e-9) == 1


# --------------------------------------------------------------------------- Frechet

def test_frechet_identical_sets_is_zero():
    a = np.random.default_rng(0).normal(size=(60, 6))
    assert abs(frechet_distance(a, a)) < 1e-8


def test_frechet_shift_is_squared_norm_of_shift():
    a = np.random.default_rng(1).normal(size=(80, 5))
    c = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    assert frechet_distance(a, a + c) == pytest.approx(float(c @ c), abs=1e-6)


def test_frechet_counts_covariance_difference():
    # 1-D Gaussians: d^2 = (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2.
    a = np.random.default_rng(2).normal(size=200)
    b = 3.0 * a
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimensions"):
        frechet_distance(np.zeros((3, 2)), np.zeros((3, 4)))


# --------------------------------------------------------------------------- summary

def _record(index, success, status, stage="", reason="", adv_label=None, pixels=None, l2=None,
            linf=None, compile_s=0.0, solve_s=0.0, total_s=0.0):
    return {"index": index, "label": 1, "success": success, "adv_label": adv_label,
            "target": adv_label, "pixels": pixels, "l2": l2, "linf": linf,
            "compile_s": compile_s, "solve_s": solve_s, "total_s": total_s,
            "status": status, "stage": stage, "reason": reason}


RECORDS = [
    _record(0, False, "skipped_misclassified", compile_s=9.0, solve_s=9.0, total_s=99.0),
    _record(1, True, "validated", "done", adv_label=3, pixels=2, l2=1.0, linf=0.5,
            compile_s=1.0, solve_s=2.0, total_s=3.5),
    _record(2, True, "validated", "done", adv_label=5, pixels=6, l2=3.0, linf=1.5,
            compile_s=2.0, solve_s=4.0, total_s=6.5),
    _record(3, False, "infeasible", "patch edge-layer 1", "model is infeasible",
            compile_s=0.5, solve_s=1.0, total_s=2.0),
    _record(4, False, "infeasible", "patch edge-layer 1", "presolve: infeasible",
            compile_s=1.5, solve_s=2.0, total_s=4.0),
]


def test_summarize_hand_computed():
    s = summarize(RECORDS, n_classes=10, n_inputs=784)
    assert (s["attempted"], s["skipped"], s["successes"]) == (4, 1, 2)
    assert s["defect_detection"] == pytest.approx(0.5)
    assert s["pixels"] == pytest.approx({"mean": 4.0, "median": 4.0, "max": 6.0})
    assert s["pixels_percent_max"] == pytest.approx(600 / 784)
    assert s["l2"] == pytest.approx({"mean": 2.0, "max": 3.0})
    assert s["linf"] == pytest.approx({"mean": 1.0, "max": 1.5})
    assert s["time_s"] == pytest.approx({"median": 3.75, "mean": 4.0,
                                         "compile_median": 1.25, "compile_mean": 1.25,
                                         "solve_median": 2.0, "solve_mean": 2.25})
    assert s["pielou"] == pytest.approx(math.log(2) / math.log(10))
    assert s["failures"] == {"patch edge-layer 1: infeasible": 2}


def test_summarize_nothing_attempted_gives_none():
    s = summarize(RECORDS[:1], n_classes=10, n_inputs=784)
    assert (s["attempted"], s["skipped"], s["successes"]) == (0, 1, 0)
    assert s["defect_detection"] is None and s["pixels_percent_max"] is None
    assert s["pixels"]["mean"] is None and s["l2"]["max"] is None
    assert s["time_s"]["median"] is None
    assert s["pielou"] == 0.0 and s["failures"] == {}


def test_failure_key_without_stage_falls_back_to_reason():
    assert failure_key(_record(0, False, "rejected", "validation")) == "validation: rejected"
    assert failure_key(_record(0, False, "", "", "no candidate target class")) == "no candidate target class"
