"""The command-line tools: results on real inputs, and clear errors (no traceback) on bad ones."""
from __future__ import annotations

import json
import subprocess
from fractions import Fraction
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_command, SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "examples" / "paper_2222" / "paper_2222.nnir"
MNIST_6X50 = SHARED_DATA / "models" / "mnist_784-50x6-10.h5"
MNIST_DATA = SHARED_DATA / "mnist" / "mnist_aigent_500.npz"


def run(*argv, module="netpatch.cli"):
    return run_command(module, *argv)


def compile_patch(*argv):
    return run(*argv, module="netpatch.compile_patch")


def assert_clear_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_compile_patch_paper_example_json():
    proc = compile_patch(PAPER, "--layer", "2", "--x", "0.5,0.5", "--property", "y[1] >= y[0] + 0.1",
                         "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "optimal" and out["validated"] is True
    assert out["objective"] == pytest.approx(1.6 / 28.5, abs=1e-9)
    assert out["eps_linf"] == pytest.approx(1.6 / 28.5, abs=1e-9)
    assert out["layer"] == 2 and out["backend"] == "highs"
    assert out["sizes"][0]["pass"] == "query"


def test_compile_patch_compare_agrees_and_dump_reads_back(tmp_path):
    import highspy
    proc = compile_patch(PAPER, "--layer", "2", "--x", "0.5,0.5", "--property", "y[1] >= y[0]",
                         "--compare", "highs,pyomo-highs,z3", "--json", "--dump-lp", tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    objectives = [row["objective"] for row in out["compare"]]
    assert objectives == pytest.approx([1.5 / 28.5] * 3, abs=1e-9)
    assert out["disagreements"] == []
    lp_files = sorted(tmp_path.glob("*.lp"))
    assert lp_files and sorted(tmp_path.glob("*.smt2"))
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.readModel(str(lp_files[0]))    # read back with its comment block
    h.run()
    assert h.getInfo().objective_function_value == pytest.approx(1.5 / 28.5, abs=1e-9)
    # every model file opens with what it is and how its names map to the weights
    head = lp_files[0].read_text().split("\n\\ File written by HiGHS")[0].splitlines()
    assert all(line.startswith("\\ ") for line in head)
    text = "\n".join(head)
    for fragment in ("edge-layer 2 of", "paper_2222.nnir", "input: --x 0.5,0.5",
                     "property: y[1] >= y[0]", "objective: minimize the largest |weight change|",
                     "W[j, i] is the weight from neuron i of layer 1 (the source) into neuron j "
                     "of layer 2", "d_pos_j - d_neg_j: the change of target neuron j's"):
        assert fragment in text, fragment
    # z3 FILE.smt2 prints the optimum: the file ends by asking for it
    import z3
    smt2 = sorted(tmp_path.glob("*.smt2"))[0].read_text()
    assert smt2.startswith("; netpatch compile-patch: ")
    assert smt2.endswith("(check-sat)\n(get-objectives)\n")
    opt = z3.Optimize()
    opt.from_string(smt2)
    assert opt.check() == z3.sat
    assert opt.model().eval(opt.objectives()[0]).as_fraction() == Fraction(1, 19)


def test_compile_patch_default_property_misclassifies_a_digit():
    if not MNIST_6X50.exists():
        pytest.skip(f"shared data not found at {MNIST_6X50}")
    proc = compile_patch(MNIST_6X50, "--layer", "mid", "--data", MNIST_DATA, "--index", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["validated"] is True and out["layer"] == 4
    assert out["weights_changed"] > 0


def test_compare_solves_one_target_class_with_every_backend():
    # Backends may return different optimal vertices, of which only some validate; the
    # comparison must still be of one problem (one target class), with equal optima.
    if not MNIST_6X50.exists():
        pytest.skip(f"shared data not found at {MNIST_6X50}")
    proc = compile_patch(MNIST_6X50, "--layer", "mid", "--data", MNIST_DATA, "--index", "0",
                         "--compare", "highs,z3", "--relinearize", "0", "--time-limit", "60", "--json")
    out = json.loads(proc.stdout)
    rows = out["compare"]
    assert len(rows) == 2 and rows[0]["target_class"] == rows[1]["target_class"]
    assert rows[1]["objective"] == pytest.approx(rows[0]["objective"], rel=1e-6)
    assert out["disagreements"] == []


@pytest.mark.parametrize("argv,fragments", [
    (["--layer", "9", "--x", "0.5,0.5"], ["--layer 9 is out of range", "1..3"]),
    (["--layer", "middle", "--x", "0.5,0.5"], ["--layer 'middle'"]),
    (["--x", "0.5,0.5,0.1"], ["3 values", "takes 2"]),
    (["--x", "0.5,abc"], ["expected comma-separated numbers"]),
    (["--x", "0.5,0.5", "--property", "y[1] >= y[7]"], ["7"]),
    (["--x", "0.5,0.5", "--property", "y[1] >== y[0]"], ["1:"]),
    (["--x", "0.5,0.5", "--backend", "cplex"], ["cplex"]),
    (["--x", "0.5,0.5", "--passes", "compact,fold"], ["unknown pass 'fold'", "sign-pruning"]),
    (["--x", "0.5,0.5", "--print-after", "fold"], ["--print-after 'fold'", "relaxation"]),
    (["--x", "0.5,0.5", "--no-phase-fixing", "--passes", "compact", "--backend", "highs"],
     ["leaves ReLUs", "relu-lowering"]),
])
def test_compile_patch_clear_errors(argv, fragments):
    assert_clear_error(compile_patch(PAPER, *argv), *fragments)


def test_explicit_pass_chain_and_print_after():
    """--passes runs exactly the named passes; --print-after shows the problem IR there.
    Without sign pruning and with the full formulation the optimum is the paper's 1.5/28.5."""
    base = (PAPER, "--layer", "2", "--x", "0.5,0.5", "--property", "y[1] >= y[0]",
            "--no-reduction", "--json")
    proc = compile_patch(*base, "--passes", "phase-fixing,relaxation,compact",
                         "--print-after", "phase-fixing")
    assert proc.returncode == 0, proc.stderr
    dump, _, payload = proc.stdout.partition("# after phase-fixing\n")[2].partition("\n{")
    out = json.loads("{" + payload)
    assert [row["pass"] for row in out["sizes"]] == ["query", "phase-fixing",
                                                     "relaxation (skipped)", "compact"]
    assert out["objective"] == pytest.approx(1.5 / 28.5, abs=1e-9)
    # after phase fixing: no ReLU pairs left, one "active" row per active neuron (2 of 2)
    assert dump.startswith("problem patch_paper_2222_layer2:") and "0 ReLU pairs" in dump
    assert dump.count("active_") == 2 and "minimize  eps_max_0" in dump
    assert "eps_pos_1_0 in [0, " in dump


def test_missing_model_file_is_a_clear_error(tmp_path):
    assert_clear_error(compile_patch(tmp_path / "nope.h5", "--x", "0.5"), "nope.h5", "no such file")
    assert_clear_error(run("eval", tmp_path / "nope.h5", "--data", "x.npz"), "no such file")


def test_eval_reports_keras_accuracy():
    if not MNIST_6X50.exists():
        pytest.skip(f"shared data not found at {MNIST_6X50}")
    proc = run("eval", MNIST_6X50, "--data", MNIST_DATA, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out == {"n": 500, "correct": 494, "accuracy": pytest.approx(0.988)}


def test_eval_saves_logits_and_checks_shapes(tmp_path):
    data = ROOT / "examples" / "digits" / "digits_test.npz"
    net = ROOT / "examples" / "digits" / "digits_mlp.keras"
    logits = tmp_path / "logits.npy"
    proc = run("eval", net, "--data", data, "--limit", "5", "--logits", logits)
    assert proc.returncode == 0, proc.stderr
    assert np.load(logits).shape == (5, 10)
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((3, 5)), y=np.zeros(3, int))
    assert_clear_error(run("eval", net, "--data", bad), "5 values", "64")
    labels = tmp_path / "labels.npz"
    np.savez(labels, x=np.zeros((3, 64)), y=np.array([0, 1, 12]))
    assert_clear_error(run("eval", net, "--data", labels), "label 12")


def test_ir_prints_parsable_text(tmp_path):
    from ir.text import parse_network
    proc = run("ir", PAPER)
    assert proc.returncode == 0, proc.stderr
    net = parse_network(proc.stdout)
    assert net(np.array([0.5, 0.5])) == pytest.approx([-5.0, -6.5])


def test_help_and_loading_do_not_import_tensorflow():
    code = ("import sys; from netpatch.compile_patch import build_parser; build_parser().format_help();"
            "from frontends import load_network; load_network(sys.argv[1]);"
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "examples" / "digits" / "digits_mlp.keras")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_gurobi_size_limit_is_one_clear_line():
    """The pip license stops at 2000 variables: a first-layer MNIST patch is far larger."""
    from backends import get_backend
    from common.errors import SolverUnavailable
    try:
        get_backend("gurobi")
    except SolverUnavailable as err:
        pytest.skip(str(err))
    if not MNIST_6X50.exists():
        pytest.skip(f"shared data not found at {MNIST_6X50}")
    proc = compile_patch(MNIST_6X50, "--layer", "1", "--backend", "gurobi", "--data", MNIST_DATA,
                         "--index", "0", "--no-reduction")
    if proc.returncode == 0:
        pytest.skip("a full Gurobi license is present")
    assert_clear_error(proc, "size-limited", "2000")
    assert len(proc.stderr.strip().splitlines()) == 1
