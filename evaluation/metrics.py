"""Attack metrics (METHOD.md, "Metrics"): Pielou impartiality, perturbation norms,
Frechet distance of feature statistics, and the per-run summary of ``results.jsonl`` records.

numpy and scipy only; plotting lives in :mod:`evaluation.report`.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence

import numpy as np
import scipy.linalg

from evaluation.records import SKIPPED_STATUS  # re-exported: the summary skips these


def pielou(labels: Iterable[int], n_classes: int) -> float:
    r"""Pielou evenness of the adversarial labels: :math:`J = H / \ln K`.

    :math:`H = -\sum_c p_c \ln p_c` is the Shannon entropy (natural log) of the share
    :math:`p_c` of ``labels`` equal to class ``c``; :math:`K` = ``n_classes``.
    J is 1.0 when the labels are spread uniformly over all K classes and 0.0 when
    ``labels`` is empty or holds a single class. For ``n_classes <= 1`` the
    normalisation :math:`\ln K` is 0 or undefined and J is defined as 0.0.
    Raises ValueError for a label outside ``[0, n_classes)``.
    """
    if n_classes <= 1:
        return 0.0
    labels = [int(label) for label in labels]
    bad = sorted({label for label in labels if not 0 <= label < n_classes})
    if bad:
        raise ValueError(f"labels {bad} outside [0, {n_classes})")
    counts = np.array(list(Counter(labels).values()), dtype=np.float64)
    if counts.size <= 1:
        return 0.0
    p = counts / counts.sum()
    return float(-np.sum(p * np.log(p)) / math.log(n_classes))


def _rows(delta) -> np.ndarray:
    """``delta`` as a 2-D array with one flattened perturbation per row (a vector is one row)."""
    delta = np.asarray(delta, dtype=np.float64)
    return delta.reshape(1, -1) if delta.ndim <= 1 else delta.reshape(delta.shape[0], -1)


def _per_row(values: np.ndarray, delta) -> np.ndarray | float:
    """A scalar for a vector ``delta``, else the array of per-row values."""
    return float(values[0]) if np.ndim(delta) <= 1 else values


def l0(delta, tol: float = 0.0):
    """Number of entries with ``|delta| > tol``, per row.

    ``delta`` is a vector (returns an int) or an array whose first axis indexes the
    perturbations (returns an int array of length ``delta.shape[0]``; further axes,
    e.g. H x W x C, are flattened).
    """
    counts = np.count_nonzero(np.abs(_rows(delta)) > tol, axis=1)
    return int(counts[0]) if np.ndim(delta) <= 1 else counts


def l2(delta):
    """Euclidean norm of ``delta``, per row (shapes as in :func:`l0`; floats)."""
    return _per_row(np.linalg.norm(_rows(delta), axis=1), delta)


def linf(delta):
    """Largest absolute entry of ``delta``, per row (shapes as in :func:`l0`; 0.0 for no entries)."""
    return _per_row(np.max(np.abs(_rows(delta)), axis=1, initial=0.0), delta)


def _feature_matrix(features, name: str) -> np.ndarray:
    """``features`` checked to be a finite (n >= 2, d) array."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim == 1:
        features = features.reshape(-1, 1)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"{name}: need a 2-D (n >= 2, d) array, got shape {features.shape}")
    if not np.all(np.isfinite(features)):
        raise ValueError(f"{name}: features contain NaN or Inf")
    return features


def frechet_distance(features_a, features_b) -> float:
    r"""Frechet distance between Gaussians fitted to two feature sets.

    .. math:: d^2 = \lVert \mu_a - \mu_b \rVert^2
              + \operatorname{Tr}\bigl(S_a + S_b - 2 (S_a S_b)^{1/2}\bigr)

    ``features_a`` (n_a, d) and ``features_b`` (n_b, d) hold one feature vector per row
    (a 1-D array is read as d = 1); :math:`S` is the unbiased sample covariance and the
    matrix square root is ``scipy.linalg.sqrtm``, of which the real part is kept. The
    result is clipped at 0 and is 0 (to about 1e-8) for identical sets. With n <= d the
    covariances are singular and ``sqrtm`` is only accurate to about 1e-6.

    The feature extractor is the caller's choice: FID proper uses Inception-v3 pool
    features, whose weights cannot be downloaded here, so report which features were
    used (e.g. the attacked network's penultimate layer, or the raw pixels).
    """
    a = _feature_matrix(features_a, "features_a")
    b = _feature_matrix(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    mean_term = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2))
    s_a = np.atleast_2d(np.cov(a, rowvar=False))
    s_b = np.atleast_2d(np.cov(b, rowvar=False))
    root = np.real(scipy.linalg.sqrtm(s_a @ s_b))
    return max(0.0, mean_term + float(np.trace(s_a + s_b - 2.0 * root)))


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def _max(values: Sequence[float]) -> float | None:
    return float(np.max(values)) if len(values) else None


def _field(records: Sequence[dict], key: str) -> list[float]:
    """The non-null values of ``key`` over ``records``."""
    return [record[key] for record in records if record.get(key) is not None]


def failure_key(record: dict) -> str:
    """How a failed record is counted: ``"stage: status"`` (the solver's free-text
    ``reason`` varies per image and is left out), else the reason or status alone."""
    stage, status, reason = (record.get(k) or "" for k in ("stage", "status", "reason"))
    if stage and status:
        return f"{stage}: {status}"
    return stage or status or reason or "unknown"


def _time_stats(attempted: Sequence[dict]) -> dict:
    total, compile_s, solve_s = (_field(attempted, k) for k in ("total_s", "compile_s", "solve_s"))
    return {"median": _median(total), "mean": _mean(total),
            "compile_median": _median(compile_s), "solve_median": _median(solve_s),
            "compile_mean": _mean(compile_s), "solve_mean": _mean(solve_s)}


def summarize(records: Sequence[dict], n_classes: int, n_inputs: int) -> dict:
    """Summary of one attack run from its ``results.jsonl`` records.

    Records with status ``"skipped_misclassified"`` count as ``skipped`` and are excluded
    from everything else; all other records are ``attempted``. ``defect_detection`` is
    successes / attempted (None when nothing was attempted). Pixels, L2 and L-inf
    statistics are over successes only; times over attempted images; any statistic with
    nothing to average is None. ``pixels_percent_max`` is the largest pixel count as a
    percentage of ``n_inputs``, the number of input values (784 for MNIST, 3072 for a
    32x32 RGB image). ``pielou`` is :func:`pielou` of the successes' adversarial labels
    over ``n_classes``. ``failures`` counts the attempted, unsuccessful records by
    :func:`failure_key`, most frequent first.
    """
    attempted = [r for r in records if r.get("status") != SKIPPED_STATUS]
    successes = [r for r in attempted if r.get("success")]
    failures = Counter(failure_key(r) for r in attempted if not r.get("success"))
    pixels, l2s, linfs = (_field(successes, k) for k in ("pixels", "l2", "linf"))
    max_pixels = _max(pixels)
    return {
        "attempted": len(attempted),
        "skipped": len(records) - len(attempted),
        "successes": len(successes),
        "defect_detection": len(successes) / len(attempted) if attempted else None,
        "pixels": {"mean": _mean(pixels), "median": _median(pixels), "max": max_pixels},
        "pixels_percent_max": None if max_pixels is None else 100.0 * max_pixels / n_inputs,
        "l2": {"mean": _mean(l2s), "max": _max(l2s)},
        "linf": {"mean": _mean(linfs), "max": _max(linfs)},
        "time_s": _time_stats(attempted),
        "pielou": pielou(_field(successes, "adv_label"), n_classes),
        "failures": dict(failures.most_common()),
    }
