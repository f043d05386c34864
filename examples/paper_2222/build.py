"""Build the paper's 2-2-2-2 network (METHOD.md, "Worked examples" 1) as .keras and .nnir.

No biases, ReLU on both hidden layers, linear output, input domain [0, 1]^2.  The matrices
below are in IR orientation (``Linear.weight`` is ``(n_out, n_in)``: row j holds the weights
INTO target neuron j, ``z = W a``); a Keras ``Dense`` kernel is the transpose.

On x = (0.5, 0.5) the layers are (1, 0.5), (3.5, 1.5) and the output is (-5, -6.5).

Rebuild (from the repository root):  .venv/bin/python examples/paper_2222/build.py
Nothing here is random, so the files are the same on every run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

NAME = "paper_2222"
# Rows are target neurons (IR orientation).
W1 = np.array([[1.0, 1.0], [-1.0, 2.0]])
W2 = np.array([[2.0, 3.0], [1.0, 1.0]])
W3 = np.array([[2.0, -8.0], [-4.0, 5.0]])
WEIGHTS = (W1, W2, W3)
ACTIVATIONS = ("relu", "relu", "linear")


def build_ir():
    """The network as an ``ir.network.Network`` (no TensorFlow needed)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from ir.network import Domain, Linear, Network, ReLU

    layers = []
    for w, act in zip(WEIGHTS, ACTIVATIONS):
        layers.append(Linear(w, np.zeros(w.shape[0])))
        if act == "relu":
            layers.append(ReLU())
    return Network(tuple(layers), Domain.box(2, 0.0, 1.0), name=NAME)


def save_keras(path: Path) -> None:
    """Keras Sequential: Input(2), Dense(2, relu), Dense(2, relu), Dense(2, linear); no biases."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(2,))], name=NAME)
    for k, act in enumerate(ACTIVATIONS, start=1):
        model.add(keras.layers.Dense(2, activation=act, use_bias=False, name=f"dense_{k}"))
    for layer, w in zip(model.layers, WEIGHTS):
        layer.set_weights([w.T.astype(np.float32)])  # Keras kernel is (n_in, n_out)
    model.save(path)


def save_nnir(path: Path) -> bool:
    """Write the .nnir text through ``ir.text.dump_nnir``; False when ir/text.py is missing."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from ir.text import dump_nnir
    except ImportError as err:
        print(f"note: {path.name} not written: ir.text.dump_nnir is not available ({err})")
        return False
    dump_nnir(build_ir(), path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: here)")
    parser.add_argument("--x", default="0.5,0.5",
                        help="an input to print the layer values of (default 0.5,0.5)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    keras_path = args.out / f"{NAME}.keras"
    save_keras(keras_path)
    print(f"wrote {keras_path}")
    nnir_path = args.out / f"{NAME}.nnir"
    if save_nnir(nnir_path):
        print(f"wrote {nnir_path}")

    x = np.array([float(v) for v in args.x.split(",")])
    trace = build_ir().simulate(x)
    for k in range(1, len(trace.post)):
        print(f"layer {k}: {trace.post[k][0].tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
