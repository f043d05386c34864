"""Bad input is a one-line error that names the flag, file or value (exit 2, no traceback),
never a "proof" or a silent default: the cases a new and an adversarial user tried."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import run_command

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits" / "digits_mlp.keras"
DIGITS_DATA = ROOT / "examples" / "digits" / "digits_test.npz"
PAPER = ROOT / "examples" / "paper_2222" / "paper_2222.nnir"


def run(*argv, module="netpatch.cli"):
    return run_command(module, *argv)


def one_line_error(proc, prog: str, *fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("flag, value, fragment", [
    ("--max-pixels", "-1", "must be a whole number >= 1"),
    ("--max-pixels", "0", "must be a whole number >= 1"),
    ("--linf", "-1", "must be > 0"),
    ("--linf", "0", "must be > 0"),
    ("--linf", "nan", "must be finite"),
    ("--max-targets", "0", "must be a whole number >= 1"),
    ("--time-limit", "-5", "must be > 0"),
    ("--limit", "-1", "must be a whole number >= 0"),
    ("--jobs", "0", "must be a whole number >= 1"),
    ("--image-time-limit", "0", "must be > 0"),
    ("--domain", "1,0", "needs LO < HI"),
    ("--domain", "0", "expected LO,HI"),
])
def test_impossible_attack_parameters_are_command_line_errors(tmp_path, flag, value, fragment):
    proc = run("attack", DIGITS, "--data", DIGITS_DATA, f"{flag}={value}", "--out", tmp_path)
    one_line_error(proc, "netpatch attack", f"argument {flag}", fragment)
    assert not (tmp_path / "results.jsonl").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--relinearize", "-3"], "argument --relinearize: must be a whole number >= 0"),
    (["--property", ""], "argument --property: must not be empty"),
    (["--time-limit", "0"], "argument --time-limit: must be > 0"),
])
def test_impossible_compile_patch_parameters(argv, fragment):
    proc = run(PAPER, "--x", "0.5,0.5", *argv, module="netpatch.compile_patch")
    one_line_error(proc, "compile-patch", fragment)


def test_errors_after_parsing_carry_the_subcommand_and_cut_long_values(tmp_path):
    proc = run("attack", DIGITS, "--data", tmp_path / "none.npz", "--out", tmp_path / "o")
    one_line_error(proc, "netpatch attack", "none.npz", "no such file")
    long_property = "y[0] >= " + "1" * 100_000 + "x"
    proc = run(PAPER, "--x", "0.5,0.5", "--property", long_property,
               module="netpatch.compile_patch")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("compile-patch: error: ") and len(proc.stderr) < 2_000


def test_negative_values_after_x_are_accepted():
    proc = run(PAPER, "--x", "-0.25,0.5", "--layer", "2", "--property", "y[1] >= y[0]", "--json",
               module="netpatch.compile_patch")
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(proc.stdout)["layer"] == 2


def test_data_outside_the_domain_is_named(tmp_path):
    x = np.load(DIGITS_DATA)["x"][:3].copy()
    x[1, 7] = 5.0
    data = tmp_path / "bad.npz"
    np.savez(data, x=x, y=np.load(DIGITS_DATA)["y"][:3])
    proc = run("attack", DIGITS, "--data", data, "--out", tmp_path / "run")
    one_line_error(proc, "netpatch attack", "row 1, column 7 holds 5.0", "domain [0.0, 1.0]")
    proc = run("attack", DIGITS, "--data", data, "--domain", "0,6", "--limit", "2", "--out",
               tmp_path / "run6")
    assert proc.returncode == 0, proc.stderr


def test_ir_prints_no_domain_the_file_does_not_hold(shared_data):
    proc = run("ir", shared_data / "acasxu" / "ACASXU_2_9.json")
    assert proc.returncode == 0, proc.stderr
    assert "input shape (5)\n" in proc.stdout and "domain" not in proc.stdout


def test_eval_with_no_rows_is_an_explicit_empty_result():
    proc = run("eval", DIGITS, "--data", DIGITS_DATA, "--limit", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"n": 0, "correct": 0, "accuracy": None}


def test_export_and_save_patched_round_trip(tmp_path):
    """The paper network exported to ONNX reloads equal; a saved patched network reloads and
    still satisfies the property it was patched for."""
    from frontends import load_network
    assert run("export", PAPER, "--to", tmp_path / "paper.onnx").returncode == 0
    original, exported = load_network(PAPER), load_network(tmp_path / "paper.onnx")
    x = np.random.default_rng(0).uniform(size=(20, 2))
    np.testing.assert_allclose(exported(x), original(x), atol=1e-12)
    saved = tmp_path / "patched.nnir"
    proc = run(PAPER, "--layer", "2", "--x", "0.5,0.5", "--property", "y[1] >= y[0] + 0.1",
               "--save-patched", saved, module="netpatch.compile_patch")
    assert proc.returncode == 0, proc.stderr
    y = load_network(saved)(np.array([0.5, 0.5]))
    assert y[1] >= y[0] + 0.1 - 1e-9
    assert not np.allclose(load_network(saved)(x), original(x))


@pytest.mark.parametrize("make, fragment", [
    (lambda p: np.savez(p, x=np.zeros((3, 64)), y=np.array(["a", "b", "c"])), "labels must be numbers"),
    (lambda p: np.savez(p, x=np.zeros((0, 64)), y=np.zeros(0, int)), "holds no rows"),
    (lambda p: np.savez(p, x=np.float64(3.0), y=np.zeros(1, int)), "holds no rows"),
])
def test_malformed_data_sets(tmp_path, make, fragment):
    path = tmp_path / "data.npz"
    make(path)
    one_line_error(run("eval", DIGITS, "--data", path), "netpatch eval", "data.npz", fragment)


def test_a_config_value_of_the_wrong_kind_names_the_layer(tmp_path):
    import h5py
    with h5py.File(tmp_path / "abc.h5", "w") as f:
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential", "config": {
            "name": "s", "layers": [
                {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [None, 4]}},
                {"class_name": "Dense", "config": {"name": "dense_1", "units": "abc"}}]}})
        f.create_group("model_weights")
    one_line_error(run("ir", tmp_path / "abc.h5"), "netpatch ir", "'dense_1'", "malformed config")


def test_logits_to_an_unwritable_path(tmp_path):
    proc = run("eval", DIGITS, "--data", DIGITS_DATA, "--logits", tmp_path / "no" / "such" / "l.npy")
    one_line_error(proc, "netpatch eval", "--logits", "cannot write")


def test_export_to_nnet_needs_a_domain_and_says_how_to_give_one(tmp_path, capsys):
    from netpatch.cli import main as netpatch
    keras = ROOT / "examples" / "paper_2222" / "paper_2222.keras"
    assert netpatch(["export", str(keras), "--to", str(tmp_path / "a.nnet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netpatch export: error: ") and "--domain LO,HI" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "a.nnet").exists()
    assert netpatch(["export", str(keras), "--to", str(tmp_path / "b.nnet"), "--domain",
                     "-1,1"]) == 0
    assert "-1.0,-1.0," in (tmp_path / "b.nnet").read_text()
