"""Attack methods side by side on one network (the paper's Table I), with the same metrics and
the same float64 validation for every method, and the transferability table (Table II).

``run_bench`` writes ``OUT/table.md``, ``OUT/table.json``, ``OUT/tradeoff.png`` and one folder
per method (its results.jsonl, report, adversarial.npz and examples.png; a rerun resumes every
method).  The table keeps the methods an earlier bench of the same images left in ``OUT``
(``table.json`` holds every method's row and the selection of images; another selection is
refused), so methods can be added one run at a time.  ``transfer_section`` adds
``transfer.md`` / ``transfer.json``.
"""
from __future__ import annotations

import json
import re
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from attacks import AttackConfig
from attacks.config import image_time_limit
from common.errors import DataError

NETPATCH_METHODS = {"netpatch-dnc": "dnc", "netpatch-direct": "direct", "netpatch-exact": "exact"}
CHUNK = 20   # baseline images per batch: the unit of progress and of resuming
MIN_FRECHET_IMAGES = 10   # fewer adversarial images give no Frechet distance (too few to fit)
ATTACKED = "the correctly classified rows among the first --limit rows"


@dataclass(frozen=True)
class BenchSettings:
    """Everything that selects the work.  ``attack`` holds netpatch's budget and solver
    (its ``strategy`` is set per method); ``eps`` is FGSM's and PGD's L-inf budget;
    ``selection`` more settings that pick the images (``evaluation.runs.selection_settings``:
    the data file's SHA-256, ``limit``, the domain), saved with every method's run.
    ``engine``/``scheduler``/``jobs``: where netpatch's methods run (``evaluation.engines``).
    ``source_index``: the data row of every image (for the pictures); ``quiet``: no
    progress on stderr."""

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
    source_index: tuple[int, ...] | None = None
    quiet: bool = False


def parse_methods(text: str) -> list[str]:
    from evaluation.baselines import METHODS
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in NETPATCH_METHODS and m not in METHODS]
    if unknown or not methods:
        raise DataError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from "
                        f"{', '.join(list(NETPATCH_METHODS) + list(METHODS))}")
    return methods


def run_bench(net, x: np.ndarray, y: np.ndarray, methods: list[str], settings: BenchSettings,
              out: Path, n_rows: int | None = None) -> dict[str, dict]:
    """Run every method on the rows of ``(x, y)`` (correctly classified images, picked
    from the first ``n_rows`` rows of the data) and write the table, merged with the methods
    an earlier bench of the same images left in ``out``; returns each method's summary."""
    out.mkdir(parents=True, exist_ok=True)
    check_table(out, settings)    # before any work: a table of other images is refused
    rows = {}
    for method in methods:
        if not settings.quiet:
            print(f"== {method}", file=sys.stderr)
        run_dir = out / method
        if method in NETPATCH_METHODS:
            run_netpatch(net, x, y, NETPATCH_METHODS[method], settings, run_dir)
        else:
            run_baseline_dir(method, net, x, y, settings, run_dir)
        rows[method] = method_row(net, run_dir)
    write_table(out, settings, net, rows, len(x), n_rows)
    return rows


def run_netpatch(net, x, y, strategy: str, settings: BenchSettings, run_dir: Path) -> None:
    from evaluation.runs import config_dict, run_attacks
    config = replace(settings.attack, strategy=strategy,
                     budget=image_time_limit(settings.attack.budget, strategy))
    run_settings = {"net": settings.net_path, "data": settings.data_path, **settings.selection,
                    **config_dict(config)}
    run_attacks(net, x, y, config, run_dir, run_settings, jobs=settings.jobs, load=settings.load,
                image_shape=settings.image_shape, engine=settings.engine,
                scheduler=settings.scheduler, quiet=settings.quiet, method=run_dir.name,
                indices=settings.source_index)


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
    from evaluation.runs import Progress, SuccessTally, append_records, finish, prepare_output
    done = prepare_output(run_dir, run_settings, n_inputs=len(x))
    todo = [i for i in range(len(x)) if i not in done]
    shape = settings.image_shape
    with Progress(len(x), SuccessTally(done.values()), done=len(done), desc=method,
                  quiet=settings.quiet) as progress:
        clf = classifier(net, shape) if todo else None
        for start in range(0, len(todo), CHUNK):
            rows = np.array(todo[start:start + CHUNK])
            for i in rows:
                progress.stage(int(i), f"{method}, a batch of {len(rows)}")
            records = run_baseline(method, net, x[rows], y[rows], config, shape, indices=rows,
                                   clf=clf)
            append_records(run_dir, records, done, progress)
    finish(run_dir, net, x, [done[i] for i in sorted(done)], run_settings, image_shape=shape,
           method=method, indices=settings.source_index)


def method_row(net, run_dir: Path) -> dict:
    """The run's summary plus the Frechet distance of penultimate-layer features (None
    from fewer than ``MIN_FRECHET_IMAGES`` adversarial images: two Gaussians fitted to a
    handful of points say little) and the pixel counts of the successes."""
    from evaluation.metrics import frechet_distance
    summary = json.loads((run_dir / "report.json").read_text())["summary"]
    adv = np.load(run_dir / "adversarial.npz")
    fd = None
    if len(adv["index"]) >= MIN_FRECHET_IMAGES:
        layer = net.depth - 1
        with warnings.catch_warnings():   # fewer images than features: a singular covariance
            warnings.simplefilter("ignore", RuntimeWarning)
            fd = frechet_distance(net.simulate(adv["x"]).post[layer], net.simulate(adv["x_adv"]).post[layer])
    summary["frechet"] = fd
    summary["pixel_counts"] = [int(p) for p in np.count_nonzero(adv["x_adv"] - adv["x"], axis=1)]
    return summary


TABLE_COLUMNS = (
    ("defect detection", "successes / attempted images (the correctly classified ones); a "
     "success is an input the original network, re-simulated in float64, classifies "
     "differently, inside the input domain (and, for netpatch, the L-inf and pixel budgets)"),
    ("pixels max / mean", "changed input values of the successes (for a colour image: "
     "positions)"),
    ("pixels max %", "the largest count as a share of the input values of one image"),
    ("L2 mean, L-inf mean", "the Euclidean norm and the largest absolute value of "
     "x_adv - x, over successes"),
    ("time per image", "wall-clock seconds per attempted image (baselines: the batch time "
     "divided by the batch size)"),
    ("Pielou", "H / ln K of the adversarial labels over the K classes: 1 when they spread "
     "evenly over all classes, 0 when every success lands in one class"),
    ("Frechet (penultimate)", "the Frechet distance between Gaussians fitted to the "
     "network's penultimate-layer features of the originals and of the adversarial inputs "
     "(the successes); smaller: the network sees the adversarial inputs more like the "
     f"originals.  Inception features (FID) are not available offline; '-' with fewer than "
     f"{MIN_FRECHET_IMAGES} successes (too few to fit a Gaussian)"),
)


def table_selection(settings: BenchSettings) -> dict:
    """What picks a bench's images (network, data, its SHA-256, --limit, domain): the
    methods of one table.json all ran on them."""
    return json.loads(json.dumps({"net": settings.net_path, "data": settings.data_path,
                                  **settings.selection}))


def check_table(out: Path, settings: BenchSettings) -> dict:
    """The methods of an earlier bench in ``out`` (``table.json``), by name; {} when there
    is none.  A table of other images (another network, data file, --limit or domain) is
    an error, so that one table never mixes them."""
    path = out / "table.json"
    if not path.exists():
        return {}
    try:
        table = json.loads(path.read_text())
        methods, selection = table["methods"], table["selection"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a table this version of netpatch bench can add to "
                        f"({type(err).__name__}: {err}); use another --out or remove that "
                        "file") from None
    mine = table_selection(settings)
    if selection != mine:
        changed = sorted(k for k in set(selection) | set(mine) if selection.get(k) != mine.get(k))
        raise DataError(f"{path} holds methods run on other images ({', '.join(changed)} "
                        "differ); use another --out, or the same network, data and --limit")
    return methods


def method_note(method: str, settings: BenchSettings) -> str:
    """How ``method`` ran, for the notes under the table."""
    from evaluation.baselines import DESCRIPTIONS
    attack = settings.attack
    if method in NETPATCH_METHODS:
        limit = "no limit" if attack.time_limit is None else f"{attack.time_limit:g} s"
        pixels = "any number of" if attack.max_pixels is None else f"<= {attack.max_pixels}"
        return (f"L-inf <= {attack.linf:g}, {pixels} pixels, {attack.backend}, {limit} per "
                "solver call")
    what = re.sub(r"\beps\b", f"eps {settings.eps:g}", DESCRIPTIONS.get(method, method), count=1)
    library = "Foolbox" if method == "l0fmn" else "ART"
    return f"{what}; seed {settings.seed}; run by {library} on a float32 Keras copy"


def write_table(out: Path, settings: BenchSettings, net, rows: dict, n_images: int,
                n_rows: int | None = None) -> None:
    """``table.md``, ``table.json`` and ``tradeoff.png`` of ``rows`` (method -> summary of
    ``method_row``), added to the methods an earlier bench of the same images left in
    ``out``: a method run again replaces its row, others keep theirs."""
    from evaluation.report import TRADEOFF_CAPTION, fmt, tradeoff_plot
    earlier = check_table(out, settings)
    previous = json.loads((out / "table.json").read_text()) if earlier else {}
    n_rows = previous.get("rows", n_rows) if n_rows is None else n_rows
    methods = dict(earlier)
    for method, summary in rows.items():
        methods[method] = {**summary, "note": method_note(method, settings)}
    net_name, data_name = Path(settings.net_path).name, Path(settings.data_path).name
    rows_text = f"the first {n_rows} rows" if n_rows is not None else "the rows"
    header = ("method", "defect detection", "pixels max / mean", "pixels max %", "L2 mean",
              "L-inf mean", "time per image mean / median s", "Pielou", "Frechet (penultimate)")
    lines = [f"# {net_name}: {rows_text} of {data_name}; the {n_images} correctly classified "
             "among them, attacked by every method", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, s in methods.items():
        dd = s["defect_detection"]
        t = s["time_s"]
        lines.append("| " + " | ".join([
            method, "-" if dd is None else f"{100 * dd:.1f}% ({s['successes']}/{s['attempted']})",
            f"{fmt(s['pixels']['max'])} / {fmt(s['pixels']['mean'])}", fmt(s["pixels_percent_max"]),
            fmt(s["l2"]["mean"]), fmt(s["linf"]["mean"]), f"{fmt(t['mean'])} / {fmt(t['median'])}",
            fmt(s["pielou"]), fmt(s["frechet"])]) + " |")
    table_end = len(lines)
    lines += ["", f"Pixels are input values ({net.n_inputs} per image); the penultimate layer "
              f"has {net.widths()[-2]} values.  What the columns mean:", ""]
    lines += [f"- **{name}**: {text}" for name, text in TABLE_COLUMNS]
    lines += ["", "## Methods", ""]
    lines += [f"- **{m}**: {s.get('note', '')}; [report]({m}/report.md), "
              f"[examples]({m}/examples.png)" for m, s in methods.items()]
    lines += ["", "## Success rate against pixels changed", "", "![trade-off](tradeoff.png)", "",
              f"[tradeoff.png](tradeoff.png): {TRADEOFF_CAPTION}"]
    (out / "table.md").write_text("\n".join(lines) + "\n")
    (out / "table.json").write_text(json.dumps(
        {"net": settings.net_path, "data": settings.data_path, "rows": n_rows,
         "images": n_images, "selection": table_selection(settings), "methods": methods},
        indent=1) + "\n")
    tradeoff_plot(out / "tradeoff.png", {m: s["pixel_counts"] for m, s in methods.items()},
                  {m: s["attempted"] for m, s in methods.items()}, n_inputs=net.n_inputs,
                  title=f"{net_name} on {data_name}: success rate against pixels changed")
    print("\n".join(lines[2:table_end]))    # the result: on stdout, also with --quiet
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
