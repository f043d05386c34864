"""``netpatch bench --transfer``: the paper's Table II.

Each method's validated adversarial inputs are split in two halves (seeded): a copy of the
network is retrained on the clean data plus a balanced mix of every method's first half,
and the table reports the share of each method's held-out half that the hardened network
still misclassifies.  Held out, so that the table measures transfer, not memory.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def split_halves(out: Path, methods: list[str], seed: int):
    """``(train, test)``: per method, (x_adv, true label) of a seeded half each."""
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for method in methods:
        with np.load(out / method / "adversarial.npz") as adv:
            x_adv, label = adv["x_adv"], adv["label"]
        order = rng.permutation(len(label))
        half = len(order) // 2
        train[method] = (x_adv[order[:half]], label[order[:half]])
        test[method] = (x_adv[order[half:]], label[order[half:]])
    return train, test


def transfer_section(args, net, x, y, out: Path, methods: list[str]) -> dict:
    from netpatch.report import fmt
    from netpatch.transfer import harden, transfer_table
    train, test = split_halves(out, methods, args.seed)
    hardened = harden(net, x, y, train, seed=args.seed, epochs=args.epochs)
    table = transfer_table(net, hardened, test)
    accuracy = {"original": float(np.mean(np.argmax(net(x), axis=1) == y)),
                "hardened": float(np.mean(np.argmax(hardened(x), axis=1) == y))}
    lines = [f"# Transferability: {Path(str(args.net)).name} retrained for {args.epochs} epochs "
             f"(seed {args.seed}) on {len(x)} clean images plus a balanced mix of half of every "
             "method's adversarial images", "",
             f"Clean accuracy: {100 * accuracy['original']:.1f}% before, "
             f"{100 * accuracy['hardened']:.1f}% after.", "",
             "| method | held-out adversarial images | still misclassified by the hardened network |",
             "|---|---|---|"]
    for method, row in table.items():
        share = row["still_misclassified"]
        lines.append(f"| {method} | {row['n']} | "
                     f"{'-' if share is None else fmt(100 * share) + '%'} |")
    (out / "transfer.md").write_text("\n".join(lines) + "\n")
    (out / "transfer.json").write_text(json.dumps({"accuracy": accuracy, "methods": table},
                                                  indent=1) + "\n")
    print("\n".join(lines))
    return table
