"""Train the bundled digits MLP: 64 -> 32 relu -> 32 relu -> 10 logits on sklearn's digits.

Data: ``sklearn.datasets.load_digits`` (1797 8x8 images, shipped with scikit-learn, no download),
pixels divided by 16 so inputs lie in [0, 1].  A stratified split with ``random_state=0`` holds
out ``TEST_SIZE`` images; they are saved as ``digits_test.npz`` with ``x`` float32 ``(N, 64)`` and
``y`` int64 ``(N,)`` (the layout of every ``--data`` .npz file of netpatch).  Everything is
seeded (``keras.utils.set_random_seed``), so a rerun on the same machine and library versions
gives the same weights.

Retrain (from the repository root):  .venv/bin/python examples/digits/train.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

SEED = 0
TEST_SIZE = 360
EPOCHS = 40
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
HIDDEN = (32, 32)


def load_split(test_size: int = TEST_SIZE, seed: int = SEED):
    """``(x_train, y_train, x_test, y_test)``: x float32 in [0, 1] of shape (N, 64), y int64.

    The split is a pure function of ``test_size`` and ``seed``; tests re-derive it from here.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed)
    return x_train, y_train, x_test, y_test


def build_model():
    import keras

    model = keras.Sequential([keras.Input(shape=(64,))], name="digits_mlp")
    for k, width in enumerate(HIDDEN, start=1):
        model.add(keras.layers.Dense(width, activation="relu", name=f"dense_{k}"))
    model.add(keras.layers.Dense(10, activation="linear", name="logits"))
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output folder (default: here)")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import keras

    keras.utils.set_random_seed(SEED)
    x_train, y_train, x_test, y_test = load_split()
    model = build_model()
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=BATCH_SIZE, shuffle=True,
              verbose=0)

    logits = model.predict(x_test, verbose=0)
    accuracy = float(np.mean(np.argmax(logits, axis=1) == y_test))
    train_accuracy = float(np.mean(np.argmax(model.predict(x_train, verbose=0), axis=1) == y_train))

    model_path = args.out / "digits_mlp.keras"
    data_path = args.out / "digits_test.npz"
    model.save(model_path)
    np.savez_compressed(data_path, x=x_test, y=y_test)
    print(f"train: {len(y_train)} images, accuracy {train_accuracy:.4f}")
    print(f"test:  {len(y_test)} images, accuracy {accuracy:.4f} "
          f"({int(round(accuracy * len(y_test)))}/{len(y_test)})")
    print(f"wrote {model_path} ({model_path.stat().st_size} bytes)")
    print(f"wrote {data_path} ({data_path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
