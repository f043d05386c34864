"""One ``results.jsonl`` record per attacked input, the same shape for every method (netpatch's
strategies and the baselines), so one summary serves them all.

Keys: ``index``, ``label``, ``success``, ``adv_label``, ``target``, ``pixels`` (changed
pixels: values, or positions of a colour image), ``values`` (changed values), ``l2``,
``linf`` (of ``x_adv - x``; these five for successes only), ``compile_s``, ``solve_s``, ``total_s``,
``status``, ``stage``, ``reason``, ``changes`` (``[[input index, new value], ...]`` with
``repr``-exact floats: the adversarial input is ``x`` with these values put in), plus what
a method adds (``targets_tried``, ``patch_mode``).
"""
from __future__ import annotations

import time

import numpy as np

SKIPPED_STATUS = "skipped_misclassified"
ERROR_STATUS = "error"


def make_record(index: int, label: int, x: np.ndarray, x_adv: np.ndarray | None,
                success: bool, status: str, stage: str, reason: str,
                adv_label: int | None = None, target: int | None = None,
                compile_s: float = 0.0, solve_s: float = 0.0, total_s: float = 0.0,
                groups: np.ndarray | None = None, **extra) -> dict:
    """The record of one input; ``x_adv`` counts (metrics, changes) only on a success.
    ``groups`` (``Network.pixel_groups``) makes ``pixels`` count positions."""
    record = {"index": int(index), "label": int(label), "success": bool(success),
              "adv_label": adv_label if success else None, "target": target,
              "pixels": None, "values": None, "l2": None, "linf": None,
              "compile_s": round(compile_s, 6), "solve_s": round(solve_s, 6),
              "total_s": round(total_s, 6), "status": status, "stage": stage,
              "reason": reason, **extra, "changes": []}
    if success:
        delta = x_adv - x
        changed = np.flatnonzero(delta)
        pixels = len(changed) if groups is None else len(np.unique(groups[changed]))
        record.update(pixels=int(pixels), values=int(len(changed)),
                      l2=float(np.linalg.norm(delta)),
                      linf=float(np.max(np.abs(delta), initial=0.0)),
                      changes=[[int(j), float(x_adv[j])] for j in changed])
    return record


def error_record(index: int, label: int, x: np.ndarray, err: BaseException,
                 total_s: float = 0.0) -> dict:
    """The record of an input whose attack raised: status ``error``, the exception's type and
    message on one line as the reason."""
    reason = " ".join(f"{type(err).__name__}: {err}".split())
    return make_record(index, label, x, None, False, ERROR_STATUS, "", reason[:500],
                       total_s=total_s)


def attack_record(net, x: np.ndarray, label: int, index: int, config) -> dict:
    """Attack one input with netpatch (``attacks.attack``) and describe the outcome; an input
    the network already misclassifies is skipped (``SKIPPED_STATUS``).  Any exception of
    this one input (a ``NetpatchError`` such as ``SolverUnavailable``, or an unexpected one)
    becomes an ``error`` record (``error_record``) so that a batch goes on;
    ``KeyboardInterrupt`` still stops the run."""
    t0 = time.perf_counter()
    try:
        return _attack_record(net, x, label, index, config, t0)
    except Exception as err:  # noqa: BLE001 - one bad input must not stop a batch
        return error_record(index, label, x, err, total_s=time.perf_counter() - t0)


def _attack_record(net, x: np.ndarray, label: int, index: int, config, t0: float) -> dict:
    from attacks import attack
    predicted = int(np.argmax(net(x)))
    if predicted != label:
        return make_record(index, label, x, None, False, SKIPPED_STATUS, "",
                           f"the network predicts {predicted}")
    result = attack(net, x, label, config)
    return make_record(index, label, x, result.x_adv, result.success, result.status,
                       result.stage, result.reason, adv_label=result.adv_label,
                       target=result.target_class, compile_s=result.times["compile_s"],
                       solve_s=result.times["solve_s"], total_s=time.perf_counter() - t0,
                       groups=net.pixel_groups(), targets_tried=result.tried, patch_mode=result.tier)
