"""Attack methods side by side on one network (the paper's Table I), with the same metrics and
the same float64 validation for every method, and the transferability table (Table II).

``run_bench`` writes ``OUT/table.md``, ``OUT/table.json``, ``OUT/tradeoff.png`` and one folder
per method (its results.jsonl, report, adversarial.npz and examples.png; a rerun resumes every
method); ``transfer_section`` adds ``transfer.md`` / ``transfer.json``.
"""
from __future__ import annotations

import json
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from attacks import AttackConfig
from common.errors import DataError

NETPATCH_METHODS = {"netpatch-dnc": "dnc", "netpatch-direct": "direct", "netpatch-exact": "exact"}
CHUNK = 20   # baseline images per batch: the unit of progress and of resuming


@dataclass(frozen=True)
class BenchSettings:
    """Everything that selects the work.  ``attack`` holds netpatch's budget and solver
    (its ``strategy`` is set per method); ``eps`` is FGSM's and PGD's L-inf budget;
    ``selection`` more settings that pick the images (``evaluation.runs.selection_settings``:
    the data file's SHA-256, ``limit``, the domain), saved with every method's run.
    ``engine``/``scheduler``/``jobs``: where netpatch's methods run (``evaluation.engines``)."""

    net_path: str
    data_path: str
    attack: AttackConfig
    eps: float = 0.1
    seed: int = 0
    jobs: int = 1
    load: Callable | None = None          # picklable network loader for worker processes
    image_shape: tuple[int, ...] | None = None
    engine: str = "local"
    scheduler: str | None = None
    selection: dict = field(default_factory=dict)


def parse_methods(text: str) -> list[str]:
    from evaluation.baselines import METHODS
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in NETPATCH_METHODS and m not in METHODS]
    if unknown or not methods:
        raise DataError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from "
                        f"{', '.join(list(NETPATCH_METHODS) + list(METHODS))}")
    return methods


def run_bench(net, x: np.ndarray, y: np.ndarray, methods: list[str], settings: BenchSettings,
              out: Path) -> dict[str, dict]:
    """Run every method on the rows of ``(x, y)`` (correctly classified images) and write the
    table; returns each method's summary."""
    out.mkdir(parents=True, exist_ok=True)
    rows = {}
    for method in methods:
        print(f"== {method}", file=sys.stderr)
        run_dir = out / method
        if method in NETPATCH_METHODS:
            run_netpatch(net, x, y, NETPATCH_METHODS[method], settings, run_dir)
        else:
            run_baseline_dir(method, net, x, y, settings, run_dir)
        rows[method] = method_row(net, run_dir)
    write_table(out, settings, net, rows, len(x))
    return rows


def run_netpatch(net, x, y, strategy: str, settings: BenchSettings, run_dir: Path) -> None:
    from evaluation.runs import config_dict, run_attacks
    config = replace(settings.attack, strategy=strategy)
    run_settings = {"net": settings.net_path, "data": settings.data_path, **settings.selection,
                    **config_dict(config)}
    run_attacks(net, x, y, config, run_dir, run_settings, jobs=settings.jobs, load=settings.load,
                image_shape=settings.image_shape, engine=settings.engine,
                scheduler=settings.scheduler)


def run_baseline_dir(method, net, x, y, settings: BenchSettings, run_dir: Path) -> None:
    """One baseline over the images, in chunks appended to results.jsonl (resumable)."""
    from evaluation.baselines import BaselineConfig, require_art
    from evaluation.runs import make_output_dir, output_lock
    require_art()
    config = BaselineConfig(eps=settings.eps, max_pixels=settings.attack.max_pixels,
                            seed=settings.seed)
    run_settings = {"net": settings.net_path, "data": settings.data_path, **settings.selection,
                    "method": method, "eps": config.eps, "max_pixels": config.max_pixels,
                    "seed": config.seed}
    make_output_dir(run_dir)
    with output_lock(run_dir):
        _run_baseline_locked(method, net, x, y, settings, config, run_settings, run_dir)


def _run_baseline_locked(method, net, x, y, settings, config, run_settings, run_dir) -> None:
    from evaluation.baselines import classifier, run_baseline
    from evaluation.runs import Progress, append_records, finish, prepare_output
    done = prepare_output(run_dir, run_settings, n_inputs=len(x))
    todo = [i for i in range(len(x)) if i not in done]
    progress = Progress(len(x), len(done), sum(r["success"] for r in done.values()))
    shape = settings.image_shape
    clf = classifier(net, shape) if todo else None
    for start in range(0, len(todo), CHUNK):
        rows = np.array(todo[start:start + CHUNK])
        records = run_baseline(method, net, x[rows], y[rows], config, shape, indices=rows, clf=clf)
        append_records(run_dir, records, done, progress)
    progress.finish()
    finish(run_dir, net, x, [done[i] for i in sorted(done)], run_settings, image_shape=shape)


def method_row(net, run_dir: Path) -> dict:
    """The run's summary plus the Frechet distance of penultimate-layer features."""
    from evaluation.metrics import frechet_distance
    summary = json.loads((run_dir / "report.json").read_text())["summary"]
    adv = np.load(run_dir / "adversarial.npz")
    fd = None
    if len(adv["index"]) >= 2:
        layer = net.depth - 1
        with warnings.catch_warnings():   # fewer images than features: a singular covariance
            warnings.simplefilter("ignore", RuntimeWarning)
            fd = frechet_distance(net.simulate(adv["x"]).post[layer], net.simulate(adv["x_adv"]).post[layer])
    summary["frechet"] = fd
    summary["pixel_counts"] = [int(p) for p in np.count_nonzero(adv["x_adv"] - adv["x"], axis=1)]
    return summary


def write_table(out: Path, settings: BenchSettings, net, rows: dict, n_images: int) -> None:
    from evaluation.baselines import DESCRIPTIONS
    from evaluation.report import fmt, tradeoff_plot
    attack = settings.attack
    header = ("method", "defect detection", "pixels max / mean", "pixels max %", "L2 mean",
              "L-inf mean", "time per image mean / median s", "Pielou", "Frechet (penultimate)")
    lines = [f"# {Path(settings.net_path).name}: first {n_images} correctly classified images of "
             f"{Path(settings.data_path).name}", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, s in rows.items():
        dd = s["defect_detection"]
        t = s["time_s"]
        lines.append("| " + " | ".join([
            method, "-" if dd is None else f"{100 * dd:.1f}% ({s['successes']}/{s['attempted']})",
            f"{fmt(s['pixels']['max'])} / {fmt(s['pixels']['mean'])}", fmt(s["pixels_percent_max"]),
            fmt(s["l2"]["mean"]), fmt(s["linf"]["mean"]), f"{fmt(t['mean'])} / {fmt(t['median'])}",
            fmt(s["pielou"]), fmt(s["frechet"])]) + " |")
    notes = [f"netpatch-{NETPATCH_METHODS[m]}: L-inf <= {attack.linf}, <= {attack.max_pixels} "
             f"pixels, {attack.backend}, {attack.time_limit} s per solver call"
             for m in rows if m in NETPATCH_METHODS]
    notes += [f"{m}: {DESCRIPTIONS[m]}" for m in rows if m in DESCRIPTIONS]
    lines += ["", "Every success re-validated in float64 on the original network, inside the input "
              "domain; baselines run by ART (l0fmn: Foolbox) on a float32 Keras copy "
              f"(eps {settings.eps}, seed {settings.seed}); their time per image is the batch "
              "time divided by the batch size.  "
              f"Pixels: input values ({net.n_inputs} per image).  Frechet distance between the "
              f"network's penultimate-layer features ({net.widths()[-2]} values) of the originals "
              "and of the adversarial inputs (Inception features are not available offline).", ""]
    lines += [f"- {note}" for note in notes]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "table.json").write_text(json.dumps(
        {"net": settings.net_path, "data": settings.data_path, "images": n_images,
         "methods": {m: {k: v for k, v in s.items() if k != "pixel_counts"} for m, s in rows.items()}},
        indent=1) + "\n")
    tradeoff_plot(out / "tradeoff.png", {m: s["pixel_counts"] for m, s in rows.items()},
                  {m: s["attempted"] for m, s in rows.items()})
    print("\n".join(lines[2:3 + len(rows) + 1]))
    print(f"wrote {out / 'table.md'}, {out / 'table.json'}, {out / 'tradeoff.png'}")


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


def transfer_section(net, x, y, out: Path, methods: list[str], settings: BenchSettings,
                     epochs: int) -> dict:
    """The paper's Table II: each method's validated adversarial inputs are split in two
    halves (seeded); a copy of the network is retrained on the clean data plus a balanced mix
    of every method's first half, and the table reports the share of each method's held-out
    half that the hardened network still misclassifies (held out, so that the table measures
    transfer, not memory)."""
    from evaluation.report import fmt
    from evaluation.transfer import harden, transfer_table
    seed = settings.seed
    train, test = split_halves(out, methods, seed)
    hardened = harden(net, x, y, train, seed=seed, epochs=epochs)
    table = transfer_table(net, hardened, test)
    accuracy = {"original": float(np.mean(np.argmax(net(x), axis=1) == y)),
                "hardened": float(np.mean(np.argmax(hardened(x), axis=1) == y))}
    lines = [f"# Transferability: {Path(settings.net_path).name} retrained for {epochs} epochs "
             f"(seed {seed}) on {len(x)} clean images plus a balanced mix of half of every "
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
