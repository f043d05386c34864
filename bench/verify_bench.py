"""netpatch verify on generated VNN-COMP style instances.  Run on demand:

    .venv/bin/python bench/verify_bench.py --images 10 --eps 0.01,0.03 --timeout 60

The shared networks are exported to ONNX and read back (the path a benchmark's instances take);
each image gets a local-robustness property (the L-inf box of eps around it, inside [0, 1];
"some other class scores at least the label") written as VNN-LIB and parsed back.  For each
strategy: sat / unsat / timeout / unknown counts and the median seconds per instance.  Every
sat is re-checked here on the ONNX graph by onnx's reference evaluator, and an unsat where
another strategy found a counterexample is counted as a contradiction (there must be none).
"""
from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from benchlib import ROOT, SHARED

from common.threads import one_blas_thread
from attacks.verify import verify
from frontends import load_network, save_network
from frontends.data import load_dataset
from ir.vnnlib import format_vnnlib, parse_vnnlib, robustness_cases

NETWORKS = {"mnist_784-8-16-10": "mnist", "mnist_784-50x6-10": "mnist",
            "mnist_cnn_4conv": "mnist", "cifar_cnn_4conv": "cifar"}
DATA = {"mnist": SHARED / "mnist" / "mnist_aigent_500.npz",
        "cifar": SHARED / "cifar10" / "cifar10_test_100.npz"}


def onnx_check(path: Path, x: np.ndarray, y: np.ndarray) -> bool:
    import onnx
    from onnx.reference import ReferenceEvaluator
    model = onnx.load(str(path))
    declared = model.graph.input[0]
    shape = [d.dim_value or 1 for d in declared.type.tensor_type.shape.dim]   # batch 1
    feed = {declared.name: x.reshape(shape).astype(np.float32)}
    out = ReferenceEvaluator(model).run(None, feed)[0]
    return bool(np.allclose(np.ravel(out), y, atol=1e-4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", default=",".join(NETWORKS),
                        help="comma-separated shared networks (default: %(default)s)")
    parser.add_argument("--images", type=int, default=10,
                        help="the first N correctly classified images (default: %(default)s)")
    parser.add_argument("--eps", default="0.01,0.03",
                        help="L-inf radii of the robustness boxes (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds per instance (default: %(default)s)")
    parser.add_argument("--strategies", default="auto,direct,exact",
                        help="comma-separated strategies (default: %(default)s)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "verify.md"),
                        help="output (default: %(default)s)")
    args = parser.parse_args()
    one_blas_thread()     # as the commands run: one job, one BLAS thread
    strategies = args.strategies.split(",")
    folder = Path(tempfile.mkdtemp(prefix="verify_bench_"))
    lines = [f"# netpatch verify, generated robustness instances ({args.images} images per "
             f"network, eps {args.eps}, timeout {args.timeout:g} s)", "",
             "| network | eps | strategy | sat | unsat | timeout | unknown | median s | mean s |",
             "|---|---|---|---|---|---|---|---|---|"]
    contradictions = []
    for name in args.networks.split(","):
        onnx_path = folder / f"{name}.onnx"
        save_network(load_network(SHARED / "models" / f"{name}.h5"), onnx_path)
        net = load_network(onnx_path)
        x, y = load_dataset(DATA[NETWORKS[name]])
        keep = np.flatnonzero(np.argmax(net(x), axis=1) == y)[:args.images]
        for eps in (float(e) for e in args.eps.split(",")):
            verdicts = {s: [] for s in strategies}
            for i in keep:
                text = format_vnnlib(robustness_cases(x[i], eps, int(y[i]), net.n_outputs),
                                     net.n_inputs, net.n_outputs)
                spec = parse_vnnlib(text, net.n_inputs, net.n_outputs)
                for strategy in strategies:
                    v = verify(net, spec, args.timeout, strategy)
                    if v.result == "sat":
                        assert onnx_check(onnx_path, v.x, v.y), (name, i, strategy)
                    verdicts[strategy].append(v)
                results = {s: verdicts[s][-1].result for s in strategies}
                if "sat" in results.values() and "unsat" in results.values():
                    contradictions.append(f"{name} image {i} eps {eps}: {results}")
                print(name, eps, i, results, flush=True)
            for strategy, vs in verdicts.items():
                counts = Counter(v.result for v in vs)
                seconds = [v.seconds for v in vs]
                lines.append(f"| {name} | {eps:g} | {strategy} | {counts['sat']} | "
                             f"{counts['unsat']} | {counts['timeout']} | {counts['unknown']} | "
                             f"{np.median(seconds):.2f} | {np.mean(seconds):.2f} |")
                print(lines[-1], flush=True)
    lines += ["", f"contradictions (sat and unsat on one instance): {contradictions or 'none'}"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
