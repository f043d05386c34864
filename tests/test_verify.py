"""netpatch verify: VNN-LIB properties decided on networks exported to ONNX.  Every sat is
re-checked by an independent evaluation of the ONNX graph (onnx's reference evaluator); an
unsat is checked against samples, and never given where a counterexample is known."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attacks.verify import verify
from conftest import run_command, MNIST_8_16, load_mnist, load_shared_network
from ir.layers import Linear, ReLU
from ir.network import Network
from ir.property import Conjunction, Constraint
from ir.vnnlib import Case, VnnlibSpec, format_vnnlib, parse_vnnlib, robustness_cases

ROOT = Path(__file__).resolve().parents[1]


def onnx_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    """The ONNX graph's own outputs on one input (onnx.reference, float32 as exported)."""
    import onnx
    from onnx.reference import ReferenceEvaluator
    model = onnx.load(str(path))
    evaluator = ReferenceEvaluator(model)
    name = model.graph.input[0].name
    dtype = np.float64 if model.graph.input[0].type.tensor_type.elem_type == 11 else np.float32
    return np.asarray(evaluator.run(None, {name: x.reshape(1, -1).astype(dtype)})[0]).ravel()


def check_sat(path: Path, spec: VnnlibSpec, verdict, tol=1e-5) -> None:
    """X in some case's box exactly and, on the ONNX graph, some conjunction holds."""
    y = onnx_outputs(path, verdict.x)
    np.testing.assert_allclose(y, verdict.y, atol=tol)
    assert any(np.all(verdict.x >= c.lower) and np.all(verdict.x <= c.upper)
               and any(conj.holds(y, tol=tol) for conj in c.output) for c in spec.cases)


def tiny() -> Network:
    """y = relu(x0 - x1) - relu(x1 - x0) = x0 - x1 on [0, 1]^2: y ranges over [-1, 1]."""
    return Network((Linear([[1, -1], [-1, 1]], [0, 0]), ReLU(), Linear([[1, -1]], [0])), None,
                   (2,), "tiny")


@pytest.mark.parametrize("threshold, expected", [(0.5, "sat"), (1.0, "sat"), (1.001, "unsat")])
@pytest.mark.parametrize("strategy", ["auto", "exact"])
def test_tiny_network_known_answers(tmp_path, threshold, expected, strategy):
    from frontends import save_network
    path = tmp_path / "tiny.onnx"
    save_network(tiny(), path)
    text = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
            "(assert (>= X_0 0.0))\n(assert (<= X_0 1.0))\n(assert (>= X_1 0.0))\n"
            f"(assert (<= X_1 1.0))\n(assert (>= Y_0 {threshold}))\n")
    spec = parse_vnnlib(text, 2, 1)
    verdict = verify(tiny(), spec, timeout=30, strategy=strategy)
    assert verdict.result == expected
    if expected == "sat":
        check_sat(path, spec, verdict)


def test_input_constraints_inside_a_disjunction():
    """Two boxes in an `or`: only the second holds a counterexample (x0 - x1 >= 0.5 needs
    x0 >= 0.5)."""
    text = ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
            "(assert (or (and (>= X_0 0.0) (<= X_0 0.4) (>= X_1 0.0) (<= X_1 1.0) (>= Y_0 0.5))\n"
            "            (and (>= X_0 0.6) (<= X_0 1.0) (>= X_1 0.0) (<= X_1 0.1) (>= Y_0 0.5))))\n")
    verdict = verify(tiny(), parse_vnnlib(text, 2, 1), timeout=30)
    assert verdict.result == "sat" and verdict.x[0] >= 0.6 and verdict.y[0] >= 0.5


@pytest.fixture(scope="module")
def mnist_onnx(tmp_path_factory):
    from frontends import save_network
    net = load_shared_network(MNIST_8_16)
    path = tmp_path_factory.mktemp("onnx") / "mnist_8_16.onnx"
    save_network(net, path)
    return net, path


@pytest.mark.parametrize("index, eps", [(0, 0.01), (1, 0.01), (2, 0.03), (0, 0.05)])
def test_robustness_on_the_exported_mnist_network(mnist_onnx, index, eps):
    from frontends import load_network
    net, path = mnist_onnx
    x, y = load_mnist()
    spec = VnnlibSpec(784, 10, robustness_cases(x[index], eps, int(y[index]), 10), "robust")
    loaded = load_network(path)
    verdict = verify(loaded, spec, timeout=60)
    assert verdict.result in ("sat", "unsat"), verdict
    if verdict.result == "sat":
        check_sat(path, spec, verdict)   # some other class scores at least the label's
    else:   # no counterexample among samples of the box, nor from the attack heuristics
        (case,) = spec.cases
        rng = np.random.default_rng(0)
        points = case.lower + rng.uniform(size=(2000, 784)) * (case.upper - case.lower)
        assert np.all(np.argmax(net(points), axis=1) == y[index])
    if (index, eps) == (0, 0.05):   # an attack finds a counterexample here: never unsat
        assert verdict.result == "sat"


def test_acas_xu_style_property(shared_data):
    """ACAS Xu property 3's input box (normalized) on network 2_9: "output 0 is not the
    minimum" must hold; the unsafe set is output 0 minimal (4 constraints)."""
    from frontends import load_network
    net = load_network(shared_data / "acasxu" / "ACASXU_2_9.json")
    lower = np.array([-0.303531156, -0.009549297, 0.493380324, 0.3, 0.3])
    upper = np.array([-0.298552812, 0.009549297, 0.5, 0.5, 0.5])
    text = "".join(f"(declare-const X_{i} Real)\n" for i in range(5))
    text += "".join(f"(declare-const Y_{j} Real)\n" for j in range(5))
    text += "".join(f"(assert (>= X_{i} {float(lower[i])!r}))\n"
                    f"(assert (<= X_{i} {float(upper[i])!r}))\n" for i in range(5))
    text += "".join(f"(assert (<= Y_0 Y_{j}))\n" for j in range(1, 5))
    spec = parse_vnnlib(text, 5, 5)
    verdict = verify(net, spec, timeout=60)
    assert verdict.result in ("sat", "unsat")
    points = lower + np.random.default_rng(1).uniform(size=(5000, 5)) * (upper - lower)
    minimal = np.argmin(net(points), axis=1) == 0
    if verdict.result == "sat":
        y = net(verdict.x)
        assert np.all(y[0] <= y[1:]) and np.all(verdict.x >= lower) and np.all(verdict.x <= upper)
    else:
        assert not minimal.any()


def cli(*argv):
    return run_command("netpatch.cli", "verify", *argv)


def test_cli_result_file_and_instances_resume(tmp_path):
    from frontends import save_network
    save_network(tiny(), tmp_path / "tiny.onnx")
    def above(threshold):
        output = (Conjunction((Constraint(((0, 1.0),), ">=", threshold),)),)
        return format_vnnlib([Case(np.zeros(2), np.ones(2), output)], 2, 1)
    (tmp_path / "sat.vnnlib").write_text(above(0.25))
    (tmp_path / "unsat.vnnlib").write_text(above(2.0))
    proc = cli(tmp_path / "tiny.onnx", tmp_path / "sat.vnnlib", "--out", tmp_path / "r.txt")
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "r.txt").read_text().splitlines()
    assert lines[0] == "sat" and lines[1].startswith("((X_0 ") and lines[-1].endswith("))")
    x = np.array([float(line.split()[-1].rstrip(")")) for line in lines[1:3]])
    y = float(lines[3].split()[-1].rstrip(")"))
    assert y == pytest.approx(x[0] - x[1], abs=1e-12) and y >= 0.25
    assert proc.stdout.splitlines()[0] == "sat"            # the result alone on stdout,
    assert proc.stderr.startswith("netpatch verify: sat in ")   # how it was reached on stderr
    proc = cli(tmp_path / "tiny.onnx", tmp_path / "unsat.vnnlib", "--quiet")
    assert proc.stdout == "unsat\n" and proc.stderr == ""
    (tmp_path / "instances.csv").write_text("tiny.onnx,sat.vnnlib,20\ntiny.onnx,unsat.vnnlib,20\n"
                                            "tiny.onnx,missing.vnnlib,20\n")
    proc = cli("--instances", tmp_path / "instances.csv")
    assert proc.returncode == 0, proc.stderr
    assert "sat 1, unsat 1, error 1" in proc.stdout
    before = (tmp_path / "results.csv").read_text()
    assert cli("--instances", tmp_path / "instances.csv").returncode == 0   # resumes: no rerun
    assert (tmp_path / "results.csv").read_text() == before


@pytest.mark.parametrize("text, fragment", [
    ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
     "(assert (<= X_0 1.0))\n", "X_0 has no lower bound"),
    ("(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
     "(assert (= X_0 1.0))\n", "'='"),
    ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n", "but the network has 2"),
])
def test_malformed_properties_are_error_verdicts(tmp_path, text, fragment):
    from frontends import save_network
    save_network(tiny(), tmp_path / "tiny.onnx")
    (tmp_path / "bad.vnnlib").write_text(text)
    proc = cli(tmp_path / "tiny.onnx", tmp_path / "bad.vnnlib", "--out", tmp_path / "r.txt")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("netpatch verify: error: ") and fragment in proc.stderr
    assert (tmp_path / "r.txt").read_text() == "error\n"


def test_instances_on_an_embedded_dask_cluster_match_local(tmp_path):
    from frontends import save_network
    save_network(tiny(), tmp_path / "tiny.onnx")
    rows = []
    for k, threshold in enumerate((0.25, 0.75, 2.0)):
        output = (Conjunction((Constraint(((0, 1.0),), ">=", threshold),)),)
        (tmp_path / f"p{k}.vnnlib").write_text(
            format_vnnlib([Case(np.zeros(2), np.ones(2), output)], 2, 1))
        rows.append(f"tiny.onnx,p{k}.vnnlib,20")
    (tmp_path / "instances.csv").write_text("\n".join(rows) + "\n")
    local = cli("--instances", tmp_path / "instances.csv", "--out", tmp_path / "local.csv")
    dask = cli("--instances", tmp_path / "instances.csv", "--out", tmp_path / "dask.csv",
               "--engine", "dask", "--jobs", "2", "--quiet")
    assert local.returncode == 0 and dask.returncode == 0, dask.stderr

    def results(name):
        import csv
        with open(tmp_path / name) as f:
            return {r["vnnlib"]: r["result"] for r in csv.DictReader(f)}
    assert results("local.csv") == results("dask.csv") == {
        "p0.vnnlib": "sat", "p1.vnnlib": "sat", "p2.vnnlib": "unsat"}
