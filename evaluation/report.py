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
        ("Max pixels changed, % of inputs", "-" if percent is None else f"{fmt(percent)} %"),
        ("L2 of delta (mean / max)", _slash(l2["mean"], l2["max"])),
        ("L-inf of delta (mean / max)", _slash(linf["mean"], linf["max"])),
        ("Time per input, s (median / mean)", _slash(time["median"], time["mean"])),
        ("Time: compile, s (median / mean)", _slash(time["compile_median"], time["compile_mean"])),
        ("Time: solve, s (median / mean)", _slash(time["solve_median"], time["solve_mean"])),
        ("Pielou impartiality", fmt(summary["pielou"])),
    ]


def _failure_lines(failures: Mapping[str, int]) -> list[str]:
    if not failures:
        return ["No failures."]
    rows = sorted(failures.items(), key=lambda item: (-item[1], item[0]))
    return _table(("Stage: status", "Count"), rows)


def render_markdown(summary: Mapping, config: Mapping, title: str) -> str:
    """The Markdown report: title, configuration table, metrics table, failures table.

    Metrics over successes are as in :func:`evaluation.metrics.summarize`; ``-`` marks a
    statistic with nothing to average.
    """
    lines = [f"# {title}", "", "## Configuration", ""]
    lines += _table(("Setting", "Value"), list(config.items())) if config else ["(none)"]
    lines += ["", "## Metrics", ""]
    lines += _table(("Metric", "Value"), _metric_rows(summary))
    lines += ["", "Pixels, L2 and L-inf are over successful attacks; times over attempted inputs.",
              "", "## Failures", ""]
    lines += _failure_lines(summary["failures"])
    return "\n".join(lines) + "\n"


def write_report(out_dir, summary: Mapping, config: Mapping, title: str) -> tuple[Path, Path]:
    """Write ``out_dir/report.json`` (``{"config": config, "summary": summary}``; values
    JSON cannot encode are written as strings) and ``out_dir/report.md``
    (:func:`render_markdown`). Creates ``out_dir``; returns the two paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / "report.json", out_dir / "report.md"
    payload = {"config": dict(config), "summary": dict(summary)}
    json_path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    md_path.write_text(render_markdown(summary, config, title))
    return json_path, md_path


# --------------------------------------------------------------------------- figures

def _pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


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


def _no_images_figure(plt, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4, 1.5), dpi=DPI)
    ax.text(0.5, 0.5, "no adversarial inputs", ha="center", va="center", fontsize=12)
    ax.set_axis_off()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


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


def image_grid(path, x, x_adv, labels: Sequence[int], adv_labels: Sequence[int],
               input_shape: Sequence[int], max_images: int = 8) -> Path:
    """Save a PNG with one column per input (the first ``max_images``) and three rows:
    original (titled ``label L``), adversarial (``-> A``) and difference ``x_adv - x``.

    ``x`` and ``x_adv`` are (n, prod(input_shape)) or (n, *input_shape) arrays.
    Image shapes (:func:`is_image_shape`; HWC, values in [0, 1]) are drawn as images:
    grayscale on shared limits, RGB directly, the difference as :func:`difference_image`
    on a diverging colormap centred at 0 with limits +-max|delta| shared by all columns
    (shown on a colorbar). Other shapes (e.g. ACAS's (5,)) are drawn as bar charts, the
    difference in red (increase) and blue (decrease). n = 0 writes a small figure saying
    "no adversarial inputs". Returns ``path``.
    """
    plt, path = _pyplot(), Path(path)
    shape = tuple(input_shape)
    n = min(len(x), int(max_images))
    if n == 0:
        _no_images_figure(plt, path)
        return path
    x = np.asarray(x, dtype=np.float64)[:n].reshape((n,) + shape)
    x_adv = np.asarray(x_adv, dtype=np.float64)[:n].reshape((n,) + shape)
    delta = x_adv - x
    bound = float(np.max(np.abs(delta))) or 1.0
    image = is_image_shape(shape)
    limits = _value_limits(x, x_adv, image)
    width = 1.0 + 1.5 * n
    fig, axes = plt.subplots(3, n, figsize=(width, 5.2), dpi=DPI, squeeze=False,
                             layout="constrained")
    for j in range(n):
        col = axes[:, j]
        col[0].set_title(f"label {labels[j]}", fontsize=10)
        col[1].set_title(f"-> {adv_labels[j]}", fontsize=10)
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
        _difference_colorbar(fig, axes[2, -1], shown)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _difference_colorbar(fig, ax, mappable) -> None:
    """A colorbar just right of the last difference image (an inset, so the grid keeps
    its column widths)."""
    cax = ax.inset_axes([1.06, 0.0, 0.07, 1.0])
    fig.colorbar(mappable, cax=cax, label="x_adv - x")


def success_curve(pixels: Sequence[int], n_attempted: int, k_max: int) -> tuple[np.ndarray, np.ndarray]:
    """(k, share) for k = 0..k_max: the percentage of ``n_attempted`` inputs with a success
    using at most k pixels, given the pixel counts of the successes."""
    k = np.arange(k_max + 1)
    counts = np.searchsorted(np.sort(np.asarray(pixels, dtype=np.int64)), k, side="right")
    return k, 100.0 * counts / n_attempted


SYMLOG_FROM = 50   # largest pixel count that still gets a linear x axis


def x_scale(k_max: int) -> str:
    """The trade-off plot's x scale: linear for sparse attacks only, else symlog."""
    return "symlog" if k_max > SYMLOG_FROM else "linear"


def tradeoff_plot(path, curves: Mapping[str, Sequence[int]], n_attempted: Mapping[str, int]) -> Path:
    """Save a PNG of success rate (y, % of attempted inputs) against pixels changed (x).

    ``curves[method]`` lists the pixel counts of that method's successful attacks and
    ``n_attempted[method]`` the number of inputs it attacked. Each method is a step curve
    of the share of attempted inputs with a success using at most k pixels, up to the
    largest count over all methods (plus one, so the last step shows). A method with no attempted input is listed in the
    legend without a curve. When dense methods (hundreds of pixels) share the plot with
    sparse ones, the x axis is linear up to 10 pixels and logarithmic beyond, so both stay
    readable. Returns ``path``.
    """
    plt, path = _pyplot(), Path(path)
    k_max = max((max(p) for p in curves.values() if len(p)), default=1)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=DPI, layout="constrained")
    for method, pixels in curves.items():
        attempted = n_attempted.get(method, 0)
        if attempted <= 0:
            ax.plot([], [], label=f"{method} (none attempted)")
            continue
        k, share = success_curve(pixels, attempted, k_max + 1)
        ax.step(k, share, where="post", label=f"{method} ({len(pixels)}/{attempted})")
    ax.set_xlabel("pixels changed (at most k)")
    ax.set_ylabel("success rate, % of attempted")
    if x_scale(k_max) == "symlog":
        ax.set_xscale("symlog", linthresh=10)
        ax.xaxis.set_major_formatter(lambda value, _pos: f"{value:g}")
        ax.set_xlabel("pixels changed (at most k; logarithmic above 10)")
    ax.set_xlim(0, k_max + 1)
    ax.set_ylim(0, 102)
    ax.grid(True, alpha=0.3)
    if curves:
        fig.legend(loc="outside right upper", title="method (successes/attempted)",
                   fontsize=9, title_fontsize=9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path
