"""A batch run into an output folder: ``results.jsonl`` (one record per input, appended as
soon as it is known, so an interrupted run loses nothing), resumed by a rerun with the same
settings, then ``report.json``, ``report.md``, ``adversarial.npz`` and ``examples.png``.

Used by ``netpatch attack`` and by ``netpatch bench`` for every method.

A run survives its inputs and its interruptions:

* one input whose attack raises is recorded with status ``error`` (``evaluation.records``);
* ``OUT/config.json`` holds everything that selects the work (network, data file and its
  SHA-256, row selection, domain, attack settings): a rerun with other settings is refused
  by name, records outside the selection are refused, and lines of ``results.jsonl`` that
  are not records (e.g. torn by an interruption) are reported by line number and dropped;
* ``OUT/.lock`` (pid and host, created atomically) keeps a second run out of the folder
  while one is running; a lock left by a dead process of this host is taken over.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from common.errors import DataError
from evaluation.progress import Progress, SuccessTally   # noqa: F401 - Progress re-exported

RESULTS = "results.jsonl"
CONFIG = "config.json"
LOCK = ".lock"


def config_dict(config) -> dict:
    """An AttackConfig as plain JSON values (nested configs as dicts)."""
    return json.loads(json.dumps(asdict(config)))


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes (hex): a data set is the same only if this is."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    return digest.hexdigest()


def selection_settings(net_path, data_path, limit: int | None = None, domain=None) -> dict:
    """The settings that pick a run's inputs: the network and data paths, the data file's
    SHA-256, the row selection (``limit``) and, when given, the input domain."""
    settings = {"net": str(net_path), "data": str(data_path),
                "data_sha256": file_sha256(data_path), "limit": limit}
    if domain is not None:
        settings["domain"] = domain
    return settings


def make_output_dir(out: Path) -> None:
    """Create the folder ``out`` (and its parents), or say in one line why it cannot be."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: is a file, not a folder; give a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataError(f"--out {out}: a part of this path is a file, not a folder") from None
    except OSError as err:
        raise DataError(f"--out {out}: cannot create this folder ({err.strerror or err})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise DataError(f"--out {out}: cannot write in this folder (permission denied)")


@contextlib.contextmanager
def output_lock(out: Path):
    """Hold ``OUT/.lock`` while a run writes into ``out``: a second run refuses the folder.

    The lock file holds ``{"pid": ..., "host": ...}`` and is created atomically (O_EXCL);
    one left by a process of this host that no longer runs is taken over with a note on
    stderr.  It is removed at the end, also on an error or an interrupt."""
    out = Path(out)
    lock = out / LOCK
    mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n"
    for _ in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _take_over_stale(lock)
            continue
        except OSError as err:
            raise DataError(f"--out {out}: cannot write in this folder ({err.strerror or err})") from None
        with os.fdopen(fd, "w") as f:
            f.write(mine)
        break
    else:
        raise DataError(f"{lock}: could not take the lock of {out}; remove {lock} if no run uses it")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text() == mine:
                lock.unlink()


def _take_over_stale(lock: Path) -> None:
    """Remove ``lock`` if it was left by a dead process of this host, else refuse."""
    try:
        text = lock.read_text()
    except FileNotFoundError:
        return   # released meanwhile: try again
    except OSError as err:
        raise DataError(f"{lock}: cannot read the lock of this output folder ({err.strerror})") from None
    try:
        holder = json.loads(text)
        pid, host = int(holder["pid"]), str(holder["host"])
    except (ValueError, TypeError, KeyError):
        raise DataError(f"{lock.parent} is locked by another run ({lock} is not a netpatch lock); "
                        f"remove {lock} if no run uses that folder") from None
    if host != socket.gethostname() or _alive(pid):
        raise DataError(f"{lock.parent} is in use by another netpatch run (pid {pid} on {host}, "
                        f"{lock}); wait for it to finish or use another --out "
                        f"(remove {lock} only if that run is gone)")
    # stale: move it aside atomically; if someone took it over meanwhile, put theirs back
    aside = lock.with_name(f"{LOCK}.stale.{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    if aside.read_text() == text:
        print(f"note: {lock}: taking over the lock left by pid {pid} on {host}, which no longer "
              "runs", file=sys.stderr)
    else:
        with contextlib.suppress(FileExistsError):
            os.link(aside, lock)
    aside.unlink()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True    # exists, another user's
    return True


def prepare_output(out: Path, settings: dict, n_inputs: int | None = None) -> dict[int, dict]:
    """Create OUT (or check it holds a run with the same settings); return records done.

    ``n_inputs``: the number of selected inputs; a record of another index is an error."""
    make_output_dir(out)
    settings = json.loads(json.dumps(settings))     # as it reads back from the file
    config_path = out / CONFIG
    if config_path.exists():
        try:
            previous = json.loads(config_path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise DataError(f"{config_path}: not a readable run settings file ({_first_line(err)}); "
                            "remove that folder or use another --out") from None
        if not isinstance(previous, dict):
            raise DataError(f"{config_path}: not a run settings file (a JSON object was expected); "
                            "remove that folder or use another --out")
        if previous != settings:
            changed = sorted(k for k in set(previous) | set(settings) if previous.get(k) != settings.get(k))
            raise DataError(f"{out} holds results of a run with other settings ({', '.join(changed)}); "
                            "use another --out or remove that folder")
    else:
        if (out / RESULTS).exists() and (out / RESULTS).stat().st_size:
            raise DataError(f"{out / RESULTS} has no {CONFIG} beside it, so the settings that made "
                            "those records are unknown; use another --out or remove that folder")
        try:   # written whole or not at all
            partial = config_path.with_name(CONFIG + ".partial")
            partial.write_text(json.dumps(settings, indent=1) + "\n")
            os.replace(partial, config_path)
        except OSError as err:
            raise DataError(f"{config_path}: cannot write ({err.strerror or err})") from None
    done = {}
    results = out / RESULTS
    if results.exists():
        done, dropped = read_results(results, n_inputs)
        if dropped or not _ends_a_line(results):   # appended records start a line of their own
            _rewrite(results, done)
    return done


def _ends_a_line(path: Path) -> bool:
    """True if ``path`` is empty or ends with a newline."""
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _first_line(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def read_results(results: Path, n_inputs: int | None = None) -> tuple[dict[int, dict], int]:
    """The records of ``results`` by index and how many lines were dropped.  A line that is
    not a record (not JSON, torn by an interruption, without an int ``index``) or repeats an
    index is reported on stderr by line number and skipped (its input runs again).  A record
    whose index is outside ``range(n_inputs)`` is an error: it belongs to another selection."""
    done, dropped = {}, 0
    try:
        text = results.read_bytes().decode("utf-8", errors="replace")
    except OSError as err:
        raise DataError(f"{results}: cannot read ({err.strerror or err})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        record = _as_record(line)
        if record is None:
            print(f"{results} line {number}: not a record, skipped", file=sys.stderr)
            dropped += 1
            continue
        index = record["index"]
        if n_inputs is not None and not 0 <= index < n_inputs:
            raise DataError(f"{results} line {number}: input {index} is outside the {n_inputs} "
                            "inputs of this run's selection; use another --out or remove that folder")
        if index in done:
            print(f"{results} line {number}: input {index} again, skipped", file=sys.stderr)
            dropped += 1
            continue
        done[index] = record
    return done, dropped


def _as_record(line: str) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    index, success = record.get("index"), record.get("success")
    if type(index) is not int or type(record.get("label")) is not int or not isinstance(success, bool):
        return None
    if success and not (isinstance(record.get("changes"), list) and type(record.get("adv_label")) is int):
        return None
    return record


def _rewrite(results: Path, done: dict) -> None:
    """Rewrite results.jsonl with each index exactly once (atomically: a new file renamed)."""
    partial = results.with_name(results.name + ".partial")
    partial.write_text("".join(json.dumps(done[i]) + "\n" for i in sorted(done)))
    os.replace(partial, results)


def append_records(out: Path, records: list[dict], done: dict, progress: "Progress") -> None:
    """Append finished inputs to results.jsonl, on disk before anything else happens."""
    try:
        with open(out / RESULTS, "a") as sink:
            for record in records:
                sink.write(json.dumps(record) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
    except OSError as err:
        raise DataError(f"{out / RESULTS}: cannot write ({err.strerror or err})") from None
    for record in records:
        done[record["index"]] = record
        progress.update(record)


def run_attacks(net, x: np.ndarray, y: np.ndarray, config, out: Path, settings: dict,
                jobs: int = 1, load=None, image_shape=None, engine: str = "local",
                scheduler: str | None = None, quiet: bool = False, method: str = "",
                indices=None) -> list[dict]:
    """Attack every row of ``x`` not yet in ``out`` on ``engine`` (``evaluation.engines``:
    ``local`` with ``jobs`` worker processes, each loading the network with ``load()``, a
    picklable callable; or ``dask``, on the cluster at ``scheduler`` or an embedded one of
    ``jobs`` workers), then write the reports.  Progress goes to stderr
    (``evaluation.progress``; nothing with ``quiet``), named ``method`` (default: the
    strategy); ``indices`` are the rows' numbers in the data file, for the pictures
    (default 0..n-1).  Returns every record, in index order."""
    from evaluation.engines import attack_records, check_engine
    check_engine(engine, scheduler, jobs)
    out = Path(out)
    make_output_dir(out)
    with output_lock(out):
        done = prepare_output(out, settings, n_inputs=len(x))
        todo = [i for i in range(len(x)) if i not in done]
        if done and not quiet:
            print(f"resuming: {len(done)} of {len(x)} inputs already in {out / RESULTS}", file=sys.stderr)
        method = method or f"netpatch {config.strategy}"
        with Progress(len(x), SuccessTally(done.values()), done=len(done), desc=method,
                      quiet=quiet) as progress:
            records = attack_records(net, x, y, config, todo, engine=engine, jobs=jobs,
                                     load=load, scheduler=scheduler, progress=progress)
            with contextlib.closing(records):
                for record in records:
                    if record["index"] in done:    # a task run twice (e.g. a worker lost): keep the first
                        continue
                    append_records(out, [record], done, progress)
        records = [done[i] for i in sorted(done)]
        finish(out, net, x, records, settings, image_shape=image_shape, method=method,
               indices=indices)
    return records


def adversarial_arrays(x: np.ndarray, records: list[dict]) -> dict[str, np.ndarray]:
    """The validated successes as arrays ``index, x, x_adv, label, adv_label``."""
    wins = [r for r in records if r["success"]]
    index = np.array([r["index"] for r in wins], dtype=np.int64)
    x_adv = x[index].copy() if len(wins) else np.zeros((0, x.shape[1]))
    for row, r in enumerate(wins):
        for j, value in r["changes"]:
            x_adv[row, j] = value
    return {"index": index, "x": x[index], "x_adv": x_adv,
            "label": np.array([r["label"] for r in wins], dtype=np.int64),
            "adv_label": np.array([r["adv_label"] for r in wins], dtype=np.int64)}


def finish(out: Path, net, x, records: list[dict], settings: dict, image_shape=None,
           method: str = "", indices=None) -> None:
    """Re-validate the successes, then write ``adversarial.npz``, ``report.json``,
    ``report.md`` and ``examples.png`` (titled with the network, the data set and
    ``method``; ``indices[i]``: the data row of input i, default i) and print one line."""
    from evaluation.metrics import summarize
    from evaluation.records import SKIPPED_STATUS
    from evaluation.report import image_grid, write_report
    arrays = adversarial_arrays(x, records)
    # Every success is re-validated here against the original network, from the file.
    if len(arrays["index"]):
        predicted = np.argmax(net(arrays["x_adv"]), axis=1)
        if not np.array_equal(predicted, arrays["adv_label"]):
            bad = arrays["index"][predicted != arrays["adv_label"]]
            raise DataError(f"{out / RESULTS}: the stored adversarial inputs of rows "
                            f"{bad.tolist()[:10]} no longer give their recorded labels")
    np.savez_compressed(out / "adversarial.npz", **arrays)
    summary = summarize(records, n_classes=net.n_outputs, n_inputs=net.n_inputs)
    rows = np.arange(len(x)) if indices is None else np.asarray(indices)
    names = [Path(str(settings[k])).name for k in ("net", "data") if settings.get(k)]
    title = (method + ": " if method else "") + " on ".join(names)
    failed = [{**r, "index": int(rows[r["index"]])} for r in records
              if not r["success"] and r.get("status") != SKIPPED_STATUS]
    shown = min(len(arrays["index"]), GRID_COLUMNS)
    write_report(out, summary, settings, title=title, failed=failed,
                 figures={"examples.png": f"{shown} of {len(arrays['index'])} adversarial "
                          "inputs: original (top), adversarial (middle) and the change "
                          "(bottom, on a fixed scale of +- the input domain's width)"})
    counts = [r.get("pixels") for r in records if r["success"]]
    image_grid(out / "examples.png", arrays["x"], arrays["x_adv"], arrays["label"],
               arrays["adv_label"], image_shape or net.input_shape, max_images=GRID_COLUMNS,
               title=title, indices=rows[arrays["index"]].tolist(),
               pixels=None if None in counts else counts, diff_limit=domain_width(net))
    dd = summary["defect_detection"]
    n_skipped = summary["skipped"]
    skipped = (f"{n_skipped} misclassified row{'' if n_skipped == 1 else 's'} skipped; "
               if n_skipped else "")
    print(f"{summary['successes']}/{summary['attempted']} correctly classified images attacked "
          f"successfully ({'-' if dd is None else f'{100 * dd:.1f}%'}); {skipped}"
          f"report: {out / 'report.md'}")


GRID_COLUMNS = 8    # adversarial inputs drawn in examples.png


def domain_width(net) -> float | None:
    """The widest interval of the network's input domain (1.0 for images in [0, 1]): the
    fixed colour scale of every method's difference images; None without a domain."""
    if net.domain is None:
        return None
    width = float(np.max(np.asarray(net.domain.upper) - np.asarray(net.domain.lower), initial=0.0))
    return width if np.isfinite(width) and width > 0 else None
