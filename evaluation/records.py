"""One ``results.jsonl`` record per attacked input, the same shape for every method (netpatch's
strategies and the baselines), so one summary serves them all.

Keys: ``index``, ``label``, ``success``, ``adv_label``, ``target``, ``pixels``, ``l2``,
``linf`` (of ``x_adv - x``, successes only), ``compile_s``, ``solve_s``, ``total_s``,
``status``, ``stage``, ``reason``, ``changes`` (``[[input index, new value], ...]`` with
``repr``-exact floats: the adversarial input is ``x`` with these values put in), plus what
a method adds (``targets_tried``, ``patch_mode``).
"""
from __future__ import annotations

import time

import numpy as np

SKIPPED_STATUS = "skipped_misclassified"


def make_record(index: int, label: int, x: np.ndarray, x_adv: np.ndarray | None,
                success: bool, status: str, stage: str, reason: str,
                adv_label: int | None = None, target: int | None = None,
                compile_s: float = 0.0, solve_s: float = 0.0, total_s: float = 0.0,
                **extra) -> dict:
    """The record of one input; ``x_adv`` counts (metrics, changes) only on a success."""
    record = {"index": int(index), "label": int(label), "success": bool(success),
              "adv_label": adv_label if success else None, "target": target,
              "pixels": None, "l2": None, "linf": None,
              "compile_s": round(compile_s, 6), "solve_s": round(solve_s, 6),
              "total_s": round(total_s, 6), "status": status, "stage": stage,
              "reason": reason, **extra, "changes": []}
    if success:
        delta = x_adv - x
        changed = np.flatnonzero(delta)
        record.update(pixels=int(len(changed)), l2=float(np.linalg.norm(delta)),
                      linf=float(np.max(np.abs(delta), initial=0.0)),
                      changes=[[int(j), float(x_adv[j])] for j in changed])
    return record


def attack_record(net, x: np.ndarray, label: int, index: int, config) -> dict:
    """Attack one input with netpatch (``attacks.attack``) and describe the outcome; an input
    the network already misclassifies is skipped (``SKIPPED_STATUS``)."""
    from attacks import attack
    t0 = time.perf_counter()
    predicted = int(np.argmax(net(x)))
    if predicted != label:
        return make_record(index, label, x, None, False, SKIPPED_STATUS, "",
                           f"the network predicts {predicted}")
    result = attack(net, x, label, config)
    return make_record(index, label, x, result.x_adv, result.success, result.status,
                       result.stage, result.reason, adv_label=result.adv_label,
                       target=result.target_class, compile_s=result.times["compile_s"],
                       solve_s=result.times["solve_s"], total_s=time.perf_counter() - t0,
                       targets_tried=result.tried, patch_mode=result.tier)
