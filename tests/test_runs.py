"""Batches that survive (evaluation/runs.py, evaluation/records.py): one image that raises is
an ``error`` record, junk in results.jsonl is reported by line and skipped, a folder from other
settings, a corrupt config.json or a bad --out is a one-line error, and OUT/.lock keeps a
second run out while taking over a lock its dead owner left."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.errors import SolverUnavailable
from frontends import load_network
from frontends.data import load_dataset
from netpatch.cli import main as netpatch

ROOT = Path(__file__).resolve().parents[1]
DIGITS_NET = ROOT / "examples" / "digits" / "digits_mlp.keras"
DIGITS_DATA = ROOT / "examples" / "digits" / "digits_test.npz"
FAST = ("--max-pixels", "10", "--strategy", "direct")


def digits_net():
    """The digits MLP with the domain [0, 1] the commands give it by default."""
    from ir.network import Domain
    net = load_network(DIGITS_NET)
    if net.domain is None:      # the domain is the task's (--domain), not the model file's
        net = net.with_domain(Domain.box(net.n_inputs))
    return net


def attack(out, *extra, data=DIGITS_DATA, limit=3) -> int:
    """``netpatch attack`` in this process: the exit code."""
    return netpatch(["attack", str(DIGITS_NET), "--data", str(data), "--limit", str(limit),
                     *FAST, *map(str, extra), "--out", str(out)])


def lines(out: Path) -> list[str]:
    return (out / "results.jsonl").read_text().splitlines()


def one_line_error(capsys, code) -> str:
    """The stderr of a refused run: exit 2, one line, no traceback."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 3-image run; tests copy it."""
    out = tmp_path_factory.mktemp("runs") / "done"
    assert attack(out) == 0
    assert len(lines(out)) == 3
    return out


def copy_run(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def test_junk_and_torn_lines_are_reported_by_line_number_and_skipped(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path)
    first = [json.loads(line) for line in lines(out)]
    (out / "results.jsonl").write_text("\n".join([
        json.dumps(first[0]), "garbage, not JSON", json.dumps(first[1]),
        json.dumps({"label": 3, "success": False}),          # JSON without an int index
        json.dumps(first[2])[:25]]) + "\n")                  # torn by an interruption
    capsys.readouterr()
    assert attack(out) == 0
    err = capsys.readouterr().err
    for number in (2, 4, 5):
        assert f"results.jsonl line {number}: not a record, skipped" in err
    assert "results.jsonl line 1:" not in err and "results.jsonl line 3:" not in err
    again = [json.loads(line) for line in lines(out)]
    assert [r["index"] for r in again] == [0, 1, 2]
    assert again[0] == first[0] and again[1] == first[1]     # kept, not redone
    assert again[2]["success"] == first[2]["success"]        # the torn one ran again


def test_a_record_outside_the_selection_is_a_clear_error(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path)
    record = json.loads(lines(out)[0])
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps({**record, "index": 7}) + "\n")
    capsys.readouterr()
    err = one_line_error(capsys, attack(out))
    assert "line 4" in err and "input 7" in err and "outside" in err


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "\xff\xfe"])
def test_a_corrupt_config_json_is_a_clear_error(tmp_path, capsys, text):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_bytes(text.encode("latin-1"))
    err = one_line_error(capsys, attack(out))
    assert str(out / "config.json") in err


def test_out_that_is_a_file_or_under_a_file_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "taken"
    path.write_text("a file")
    err = one_line_error(capsys, attack(path))
    assert f"--out {path}" in err and "is a file" in err
    err = one_line_error(capsys, attack(path / "sub"))
    assert f"--out {path / 'sub'}" in err and "cannot create" in err
    assert path.read_text() == "a file"


def test_an_unwritable_out_is_a_clear_error(tmp_path, capsys):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("running as root: a 0o500 folder stays writable")
        err = one_line_error(capsys, attack(parent))
        assert f"--out {parent}" in err and "cannot write" in err
        err = one_line_error(capsys, attack(parent / "run"))
        assert f"--out {parent / 'run'}" in err and "cannot create" in err
    finally:
        parent.chmod(0o700)


def test_a_changed_limit_or_data_file_refuses_by_name(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path)
    before = lines(out)
    err = one_line_error(capsys, attack(out, limit=4))
    assert "other settings (limit)" in err
    # the same file name with other content: the data hash differs
    data = tmp_path / "digits.npz"
    x, y = load_dataset(DIGITS_DATA)
    np.savez(data, x=x, y=y)
    other = tmp_path / "other"
    assert attack(other, data=data) == 0
    np.savez(data, x=x[::-1].copy(), y=y[::-1].copy())
    capsys.readouterr()
    err = one_line_error(capsys, attack(other, data=data))
    assert "other settings (data_sha256)" in err
    assert lines(out) == before


def test_a_second_run_into_a_locked_folder_refuses(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path)
    lock = out / ".lock"
    held = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
    lock.write_text(held)                       # this live process holds the folder
    err = one_line_error(capsys, attack(out))
    assert "in use by another netpatch run" in err and f"pid {os.getpid()}" in err
    assert lock.read_text() == held             # a refused run leaves the lock alone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                 # reaped: no process has this pid now
    lock.write_text(json.dumps({"pid": dead.pid, "host": "another-machine"}))
    err = one_line_error(capsys, attack(out))  # another host's pid cannot be checked
    assert "another-machine" in err


def test_a_stale_lock_of_a_dead_process_is_taken_over(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path)
    (out / "results.jsonl").write_text(lines(out)[0])     # a whole record, its newline lost
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    capsys.readouterr()
    assert attack(out) == 0
    err = capsys.readouterr().err
    assert f"taking over the lock left by pid {dead.pid}" in err
    assert [json.loads(line)["index"] for line in lines(out)] == [0, 1, 2]
    assert not (out / ".lock").exists()


def failing_attack(monkeypatch, x, failures: dict):
    """attacks.attack raising ``failures[i]`` for row ``i`` of ``x``."""
    import attacks
    real = attacks.attack

    def fake(net, xi, label, config):
        for i, err in failures.items():
            if np.array_equal(xi, x[i]):
                raise err
        return real(net, xi, label, config)
    monkeypatch.setattr(attacks, "attack", fake)


def test_an_image_whose_attack_raises_is_an_error_record_and_the_batch_goes_on(tmp_path,
                                                                               monkeypatch):
    from attacks import AttackConfig
    from evaluation.runs import run_attacks
    net = digits_net()
    x, y = load_dataset(DIGITS_DATA)
    x, y = x[:5], y[:5]
    assert np.all(np.argmax(net(x), axis=1) == y)
    failing_attack(monkeypatch, x, {
        1: SolverUnavailable("gurobi: the pip licence is limited to 2000 variables\n(5000 asked)"),
        3: ZeroDivisionError("division by zero")})
    out = tmp_path / "run"
    config = AttackConfig(max_pixels=10, strategy="direct")
    records = run_attacks(net, x, y, config, out, {"net": "digits"})
    assert [r["index"] for r in records] == [0, 1, 2, 3, 4]
    assert records[1]["status"] == records[3]["status"] == "error"
    assert records[1]["reason"] == ("SolverUnavailable: gurobi: the pip licence is limited to "
                                    "2000 variables (5000 asked)")
    assert records[3]["reason"] == "ZeroDivisionError: division by zero"
    assert all(records[i]["success"] for i in (0, 2, 4))
    assert not records[1]["success"] and not records[3]["success"]
    report = json.loads((out / "report.json").read_text())["summary"]
    assert report["failures"] == {"error": 2} and report["successes"] == 3
    assert "| error | 2 |" in (out / "report.md").read_text()
    assert not (out / ".lock").exists()


def test_an_interrupt_stops_the_run_and_keeps_what_was_done(tmp_path, monkeypatch):
    from attacks import AttackConfig
    from evaluation.runs import run_attacks
    net = digits_net()
    x, y = load_dataset(DIGITS_DATA)
    x, y = x[:4], y[:4]
    failing_attack(monkeypatch, x, {2: KeyboardInterrupt()})
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_attacks(net, x, y, AttackConfig(max_pixels=10, strategy="direct"), out, {"net": "d"})
    assert [json.loads(line)["index"] for line in lines(out)] == [0, 1]
    assert not (out / ".lock").exists()
