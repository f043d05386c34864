"""Run reports: ``report.json`` + ``report.md`` from a :func:`evaluation.metrics.summarize`
dict, and PNG figures (adversarial image grid, success-rate / pixels trade-off).

matplotlib is imported inside the plotting functions with the Agg backend, so importing
this module needs no display and no matplotlib.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

DPI = 100
DIFF_CMAP = "RdBu_r"  # diverging: blue = decreased, white = unchanged, red = increased
ROW_NAMES = ("original", "adversarial", "difference")


# --------------------------------------------------------------------------- Markdown / JSON

def fmt(value, digits: int = 4) -> str:
    """A number with ``digits`` significant digits; ints as they are; None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}g}"
    return str(value)


def _cell(value) -> str:
    """A Markdown table cell: nested values as JSON, ``|`` and newlines escaped."""
    text = json.dumps(value, default=str) if isinstance(value, (dict, list, tuple)) else fmt(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


def _slash(*values) -> str:
    return " / ".join(fmt(v) for v in values)


def defect_detection_text(summary: Mapping) -> str:
    """E.g. ``"66.67 % (2 / 3)"``; ``"- (0 / 0)"`` when nothing was attempted."""
    rate = summary["defect_detection"]
    percent = "-" if rate is None else f"{fmt(100.0 * rate)} %"
    return f"{percent} ({summary['successes']} / {summary['attempted']})"


def _metric_rows(summary: Mapping) -> list[tuple[str, str]]:
    pixels, l2, linf, time = (summary[k] for k in ("pixels", "l2", "linf", "time_s"))
    percent = summary["pixels_percent_max"]
    return [
        ("Defect detection (successes / attempted)", defect_detection_text(summary)),
        ("Skipped (misclassified)", fmt(summary["skipped"])),
        ("Pixels changed (mean / median / max)", _slash(pixels["mean"], pixels["median"], pixels["max"])),
        ("Max pixels changed, % of input values", "-" if percent is None else f"{fmt(percent)} %"),
        ("L2 of delta (mean / max)", _slash(l2["mean"], l2["max"])),
        ("L-inf of delta (mean / max)", _slash(linf["mean"], linf["max"])),
        ("Time per input, s (median / mean)", _slash(time["median"], time["mean"])),
        ("Time: compile, s (median / mean)", _slash(time["compile_median"], time["compile_mean"])),
        ("Time: solve, s (median / mean)", _slash(time["solve_median"], time["solve_mean"])),
        ("Pielou impartiality", fmt(summary["pielou"])),
    ]


METRIC_NOTES = (
    "- **defect detection**: successes / attempted.  Attempted images are the ones the network "
    "classifies correctly (the others are skipped: nothing to attack); a success is an input "
    "that the original network, re-simulated in float64, classifies differently, inside the "
    "input domain, the L-inf budget and the pixel budget.",
    "- **pixels changed**: input values that differ from the original (for a colour image: "
    "positions with any channel changed).  **% of input values**: the largest count as a "
    "share of the values of one input (784 for MNIST), so 100 % means every value changed.",
    "- **L2 / L-inf of delta**: the Euclidean norm and the largest absolute value of "
    "x_adv - x.  Pixels, L2 and L-inf are over successes only.",
    "- **time per input**: wall-clock seconds of one image's whole attack, over attempted "
    "images; compile = building the queries and running the passes, solve = the solver's "
    "time.",
    "- **Pielou impartiality**: H / ln K, H the Shannon entropy of the adversarial labels over "
    "the K classes: 1 when they spread evenly over all classes, 0 when every success lands in "
    "one class.",
)

MAX_FAILURE_ROWS = 50   # failed images listed by name in report.md (all are in results.jsonl)


def _failure_lines(failures: Mapping[str, int], failed: Sequence[Mapping] = ()) -> list[str]:
    if not failures:
        return ["No failures."]
    rows = sorted(failures.items(), key=lambda item: (-item[1], item[0]))
    lines = _table(("Stage: status", "Count"), rows)
    if failed:
        lines += ["", "Each failed image, with the reason its attack gave:", ""]
        lines += _table(("Image", "Stage", "Status", "Reason"),
                        [(r.get("index"), r.get("stage") or "-", r.get("status") or "-",
                          _cut(r.get("reason") or "-", 200)) for r in failed[:MAX_FAILURE_ROWS]])
        if len(failed) > MAX_FAILURE_ROWS:
            lines += ["", f"... and {len(failed) - MAX_FAILURE_ROWS} more (every record is in "
                      "results.jsonl)."]
    return lines


def _cut(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + " [...]"


def render_markdown(summary: Mapping, config: Mapping, title: str,
                    failed: Sequence[Mapping] = (), figures: Mapping[str, str] | None = None) -> str:
    """The Markdown report: title, the pictures (``figures``: file name -> what it shows,
    linked relative to the report), configuration table, metrics table with what each
    metric means, failures by stage and status, and each failed image (``failed``: its
    records) with its reason.

    Metrics over successes are as in :func:`evaluation.metrics.summarize`; ``-`` marks a
    statistic with nothing to average.
    """
    lines = [f"# {title}", ""]
    for name, caption in (figures or {}).items():
        lines += [f"![{name}]({name})", "", f"[{name}]({name}): {caption}", ""]
    lines += ["## Configuration", ""]
    lines += _table(("Setting", "Value"), list(config.items())) if config else ["(none)"]
    lines += ["", "## Metrics", ""]
    lines += _table(("Metric", "Value"), _metric_rows(summary))
    lines += ["", *METRIC_NOTES, "", "## Failures", ""]
    lines += _failure_lines(summary["failures"], failed)
    return "\n".join(lines) + "\n"


def write_report(out_dir, summary: Mapping, config: Mapping, title: str,
                 failed: Sequence[Mapping] = (), figures: Mapping[str, str] | None = None
                 ) -> tuple[Path, Path]:
    """Write ``out_dir/report.json`` (``{"config": config, "summary": summary}``; values
    JSON cannot encode are written as strings) and ``out_dir/report.md``
    (:func:`render_markdown`). Creates ``out_dir``; returns the two paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    payload = {"config": dict(config), "summary": dict(summary)}
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(summary, config, title, failed, figures))
    return json_path, md_path


# --------------------------------------------------------------------------- figures

def _figure(**kwargs):
    """A matplotlib ``Figure``, saved through Agg.  Without pyplot: no GUI backend, no global
    figure list to close, and 0.15 s less to import for every run's report."""
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def image_shape(net, shape: Sequence[int] | None = None) -> tuple[int, ...]:
    """How to draw the network's flat inputs: ``shape`` when given (it must hold
    ``n_inputs`` values), else the network's input shape; a flat input of s*s values
    (s >= 4) is read as an s x s grayscale image and one of 3*s*s values as RGB (MNIST:
    28x28x1, CIFAR-10: 32x32x3, the digits example: 8x8x1)."""
    import math
    from common.errors import DataError
    if shape:
        shape = tuple(int(d) for d in shape)
        if int(np.prod(shape)) != net.n_inputs:
            raise DataError(f"--image-shape {','.join(map(str, shape))}: {int(np.prod(shape))} "
                            f"values, the network takes {net.n_inputs}")
        return shape
    if len(net.input_shape) != 1:
        return tuple(net.input_shape)
    n = net.n_inputs
    for channels in (1, 3):
        side = math.isqrt(n // channels)
        if side >= 4 and side * side * channels == n:
            return (side, side, channels)
    return tuple(net.input_shape)


def is_image_shape(input_shape: Sequence[int]) -> bool:
    """True for (H, W) and (H, W, C) with C in {1, 3}; anything else is drawn as bars."""
    shape = tuple(input_shape)
    return len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3))


def difference_image(delta: np.ndarray) -> np.ndarray:
    """The (H, W) map shown for an (H, W[, C]) ``delta``: per pixel, the channel change of
    largest magnitude with its sign (so an RGB change is neither averaged away nor unsigned)."""
    if delta.ndim == 2:
        return delta
    pick = np.argmax(np.abs(delta), axis=2)[..., None]
    return np.take_along_axis(delta, pick, axis=2)[..., 0]


def _show_image(ax, image: np.ndarray, limits: tuple[float, float]) -> None:
    if image.ndim == 3 and image.shape[2] == 3:
        ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
    else:
        ax.imshow(image.reshape(image.shape[:2]), cmap="gray", vmin=limits[0], vmax=limits[1],
                  interpolation="nearest")


def _show_bars(ax, values: np.ndarray, limits: tuple[float, float], signed: bool = False):
    colors = np.where(values >= 0, "tab:red", "tab:blue") if signed else "tab:gray"
    ax.bar(np.arange(values.size), values, color=colors)
    ax.set_ylim(*limits)
    ax.axhline(0.0, color="black", linewidth=0.5)


def _no_images_figure(path: Path, title: str | None = None) -> None:
    fig = _figure(figsize=(6 if title else 4, 1.5), dpi=DPI)
    ax = fig.subplots()
    text = f"{title}\nno adversarial inputs" if title else "no adversarial inputs"
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11 if title else 12)
    ax.set_axis_off()
    fig.savefig(path, dpi=DPI)


def _value_limits(x: np.ndarray, x_adv: np.ndarray, image: bool) -> tuple[float, float]:
    """Shared limits for originals and adversarials: for images [0, 1] widened to the data,
    for bars the data range including 0, padded by 5 %."""
    lo = min(0.0, float(x.min()), float(x_adv.min()))
    hi = max(0.0, float(x.max()), float(x_adv.max()))
    if image:
        return lo, max(1.0, hi)
    pad = 0.05 * ((hi - lo) or 1.0)
    return lo - pad, hi + pad


def _label_rows(axes, image: bool) -> None:
    """Row names on the left; images lose their ticks, bar charts keep the value axis on
    the first column and the input index on the bottom row."""
    for ax, name in zip(axes[:, 0], ROW_NAMES):
        ax.set_ylabel(name, fontsize=10)
    for (i, j), ax in np.ndenumerate(axes):
        if image or i < 2:
            ax.set_xticks([])
        if image or j > 0:
            ax.tick_params(left=False, labelleft=False)


def grid_labels(labels: Sequence[int], adv_labels: Sequence[int], pixels: Sequence[int],
                indices: Sequence[int] | None = None, total: int | None = None,
                title: str | None = None, unit: str = "pixel") -> tuple[str, list[tuple[str, str, str]]]:
    """The texts of an example grid: the figure title, and per column the titles of the
    original (image index and true label), adversarial (new label) and difference (number
    of changed pixels, or other ``unit``) panels.  ``total`` is the number of successes the
    grid was cut from: the title says "showing n of total successes" when it holds more than
    the columns."""
    n = len(labels)
    total = n if total is None else int(total)
    shown = (f"showing {n} of {total} successes" if total > n
             else f"all {total} success{'' if total == 1 else 'es'}")
    heading = f"{title}\n{shown}" if title else shown
    columns = []
    for j in range(n):
        where = f"image {indices[j]}\n" if indices is not None else ""
        count = int(pixels[j])
        columns.append((f"{where}true label {labels[j]}", f"now classified {adv_labels[j]}",
                        f"{count} {unit}{'' if count == 1 else 's'} changed"))
    return heading, columns


def changed_pixels(delta: np.ndarray) -> int:
    """Changed pixels of one (H, W[, C]) or flat ``delta``: positions of a colour image
    (any channel changed), else values."""
    if delta.ndim == 3 and delta.shape[2] == 3:
        return int(np.count_nonzero(np.any(delta != 0, axis=2)))
    return int(np.count_nonzero(delta))


def difference_bound(delta: np.ndarray, diff_limit: float | None = None) -> float:
    """The colour scale of the difference images, +- this value: ``diff_limit`` when given
    (the input domain's width: the same for every method, whatever its changes), else the
    largest |delta| (1.0 when nothing changed)."""
    if diff_limit:
        return float(diff_limit)
    return float(np.max(np.abs(delta), initial=0.0)) or 1.0


def image_grid(path, x, x_adv, labels: Sequence[int], adv_labels: Sequence[int],
               input_shape: Sequence[int], max_images: int = 8, *, title: str | None = None,
               indices: Sequence[int] | None = None, pixels: Sequence[int] | None = None,
               total: int | None = None, diff_limit: float | None = None) -> Path:
    """Save a PNG with one column per input (the first ``max_images``) and three rows:
    original, adversarial and difference ``x_adv - x``, with the texts of
    :func:`grid_labels` (``title``, e.g. network, data set and method; ``indices``, the
    images' rows in the data; ``pixels``, their changed-pixel counts, else counted here by
    :func:`changed_pixels`; ``total``, the number of successes, default ``len(x)``).

    ``x`` and ``x_adv`` are (n, prod(input_shape)) or (n, *input_shape) arrays.
    Image shapes (:func:`is_image_shape`; HWC, values in [0, 1]) are drawn as images:
    grayscale on shared limits, RGB directly, the difference as :func:`difference_image`
    on a diverging colormap centred at 0 with the fixed limits +-``diff_limit`` (pass the
    width of the input domain, so that grids of different methods share one scale; default
    the largest |delta| here), shown on a colorbar. Other shapes (e.g. ACAS's (5,)) are
    drawn as bar charts, the difference in red (increase) and blue (decrease) on the scale
    of its largest |delta| (``diff_limit`` is for images only), changes counted as inputs.
    n = 0 writes
    a small figure saying "no adversarial inputs". Returns ``path``.
    """
    path = Path(path)
    shape = tuple(input_shape)
    total = len(x) if total is None else int(total)
    n = min(len(x), int(max_images))
    if n == 0:
        _no_images_figure(path, title)
        return path
    x = np.asarray(x, dtype=np.float64)[:n].reshape((n,) + shape)
    x_adv = np.asarray(x_adv, dtype=np.float64)[:n].reshape((n,) + shape)
    delta = x_adv - x
    if pixels is None:
        pixels = [changed_pixels(d) for d in delta]
    image = is_image_shape(shape)
    heading, columns = grid_labels(labels[:n], adv_labels[:n], pixels[:n],
                                   None if indices is None else indices[:n], total, title,
                                   unit="pixel" if image else "input")
    # one colour scale for every method's images; bars keep their own scale (an input range
    # such as ACAS Xu's 0..60760 would flatten a change of 0.1)
    bound = difference_bound(delta, diff_limit if image else None)
    limits = _value_limits(x, x_adv, image)
    width = 1.6 + 1.6 * n
    fig = _figure(figsize=(width, 6.4), dpi=DPI, layout="constrained")
    axes = fig.subplots(3, n, squeeze=False)
    fig.suptitle(heading, fontsize=11)
    for j in range(n):
        col = axes[:, j]
        for ax, text in zip(col, columns[j]):
            ax.set_title(text, fontsize=9)
        if image:
            _show_image(col[0], x[j], limits)
            _show_image(col[1], x_adv[j], limits)
            shown = col[2].imshow(difference_image(delta[j]), cmap=DIFF_CMAP, vmin=-bound,
                                  vmax=bound, interpolation="nearest")
        else:
            _show_bars(col[0], x[j].ravel(), limits)
            _show_bars(col[1], x_adv[j].ravel(), limits)
            _show_bars(col[2], delta[j].ravel(), (-1.05 * bound, 1.05 * bound), signed=True)
    _label_rows(axes, image)
    if image:
        fixed = f", fixed at \u00b1{bound:g}" if diff_limit else ""
        _difference_colorbar(fig, axes[2, -1], shown, f"x_adv - x{fixed}")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _difference_colorbar(fig, ax, mappable, label: str) -> None:
    """A colorbar just right of the last difference image (an inset, so the grid keeps
    its column widths)."""
    cax = ax.inset_axes([1.06, 0.0, 0.07, 1.0])
    fig.colorbar(mappable, cax=cax, label=label)


def success_curve(pixels: Sequence[int], n_attempted: int, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """(k, share) for k = 0..k_max: the percentage of ``n_attempted`` inputs with a success
    using at most k pixels, given the pixel counts of the successes."""
    k = np.arange(k_max + 1)
    counts = np.searchsorted(np.sort(np.asarray(pixels, dtype=np.int64)), k, side="right")
    return k, 100.0 * counts / n_attempted


LOG_FROM = 50   # largest pixel count that still gets a linear x axis
LINE_STYLES = ("-", "--", "-.", ":")


def x_scale(k_max: int) -> str:
    """The trade-off plot's x scale: linear for sparse attacks only, else logarithmic."""
    return "log" if k_max > LOG_FROM else "linear"


def method_styles(methods: Sequence[str]) -> dict[str, dict]:
    """A colour (tab10) and a line style per method, no two methods alike in both, so the
    curves stay apart in colour and in grayscale print."""
    import matplotlib
    colors = matplotlib.colormaps["tab10"].colors
    return {m: {"color": colors[i % len(colors)],
                "linestyle": LINE_STYLES[(i + i // len(colors)) % len(LINE_STYLES)]}
            for i, m in enumerate(methods)}


TRADEOFF_CAPTION = ("Each curve: the share of a method's attempted (correctly classified) "
                    "images with a validated adversarial input that changes at most k pixels.  "
                    "Dense attacks (FGSM, PGD, C&W) change most input values and sparse ones "
                    "(netpatch, JSMA) a few, so when both are present the x axis is logarithmic, "
                    "up to the input size.")


def tradeoff_plot(path, curves: Mapping[str, Sequence[int]], n_attempted: Mapping[str, int],
                  n_inputs: int | None = None, title: str | None = None) -> Path:
    """Save a PNG of success rate (y, % of attempted inputs) against pixels changed (x).

    ``curves[method]`` lists the pixel counts of that method's successful attacks and
    ``n_attempted[method]`` the number of inputs it attacked. Each method is a step curve
    of the share of attempted inputs with a success using at most k pixels, up to the
    largest count over all methods (plus one, so the last step shows), in its own colour
    and line style (:func:`method_styles`). A method with no attempted input is listed in
    the legend without a curve. When dense methods (more than ``LOG_FROM`` pixels) share
    the plot with sparse ones, the x axis is logarithmic from 1 to ``n_inputs`` (the input
    size, which gets a tick of its own), so both stay readable (:data:`TRADEOFF_CAPTION`).
    Returns ``path``.
    """
    path = Path(path)
    k_max = max((max(p) for p in curves.values() if len(p)), default=1)
    log = x_scale(k_max) == "log"
    styles = method_styles(list(curves))
    fig = _figure(figsize=(8, 5.2), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for method, pixels in curves.items():
        attempted = n_attempted.get(method, 0)
        if attempted <= 0:
            ax.plot([], [], label=f"{method} (none attempted)", **styles[method])
            continue
        k, share = success_curve(pixels, attempted, max(k_max + 1, n_inputs or 0) if log
                                 else k_max + 1)
        if log:   # k = 0 has no place on a log axis (and no success changes 0 pixels)
            k, share = k[1:], share[1:]
        ax.step(k, share, where="post", linewidth=1.8,
                label=f"{method} ({len(pixels)}/{attempted})", **styles[method])
    of = f" of {n_inputs} input values" if n_inputs else ""
    if log:
        right = max(k_max + 1, n_inputs or 0)
        ax.set_xscale("log")
        ax.set_xlim(1, right * 1.15)
        ticks = [10 ** e for e in range(int(np.log10(right)) + 1) if 10 ** e <= right / 2]
        if n_inputs:
            ticks.append(n_inputs)
        ax.set_xticks(ticks, [f"{t:g}" + ("\n(all)" if t == n_inputs else "") for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(f"pixels changed, at most k{of} (log scale: sparse and dense attacks)")
    else:
        ax.set_xlim(0, k_max + 1)
        ax.set_xlabel(f"pixels changed, at most k{of}")
    ax.set_ylabel("success rate, % of attempted")
    ax.set_ylim(0, 102)
    ax.grid(True, alpha=0.3)
    fig.suptitle(title or "Success rate against pixels changed", fontsize=11)
    if curves:
        fig.legend(loc="outside lower center", title="method (successes/attempted)",
                   ncols=min(4, len(curves)), fontsize=9, title_fontsize=9)
    fig.savefig(path, dpi=DPI)
    return path
