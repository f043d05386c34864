"""Transferability (the paper's Table II): do a method's adversarial images survive
adversarial retraining on everybody's adversarial images?

The measurement, top to bottom:

1. :func:`training_mix` builds one training set: all clean data plus the same number of
   adversarial images from every method (so no method dominates the retraining), each
   labelled with the TRUE label of the image it was made from, shuffled with the seed.
2. :func:`harden` fine-tunes a copy of the network on that mix in Keras (starting from the
   network's own weights) and returns the retrained network as an IR ``Network``.
3. :func:`transfer_table` reports, per method, the share of its adversarial images that the
   hardened network still misclassifies, next to the same share under the original network
   (1.0 for validated adversarials).  A method whose images stay misclassified after the
   retraining is harder to defend against by adversarial training.

Both evaluations run on the IR networks in float64, the same simulation that validates
adversarial images everywhere else in netpatch; Keras is only the trainer.  Everything is
seeded: the sample and shuffle by ``np.random.default_rng(seed)``, the training by
``keras.utils.set_random_seed(seed)``.  TensorFlow is imported inside :func:`harden` only.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from frontends.data import check_fits
from ir.network import Network

Adversarial = dict[str, tuple[np.ndarray, np.ndarray]]

LEARNING_RATE = 1e-3
BATCH_SIZE = 32


def training_mix(net: Network, x_clean: np.ndarray, y_clean: np.ndarray,
                 adversarial: Adversarial, rng: np.random.Generator,
                 per_method: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The retraining set: all of ``(x_clean, y_clean)`` plus ``per_method`` adversarial
    images drawn without replacement from each method that has any (default: as many as
    the smallest such method has), labelled with their true labels, in a shuffled order.

    Methods are visited in sorted name order, so the result depends on the data and the
    generator only, not on the order in which the dict was filled.  Raises ValueError when
    ``per_method`` asks for more images than a method has (the mix would not be balanced).
    """
    x_clean, y_clean = _checked(net, x_clean, y_clean, "clean data")
    sets = {name: _checked(net, x, y, f"adversarial images of {name!r}")
            for name, (x, y) in sorted(adversarial.items())}
    sets = {name: xy for name, xy in sets.items() if len(xy[0]) > 0}
    smallest = min((len(x) for x, _ in sets.values()), default=0)
    if per_method is None:
        per_method = smallest
    if per_method < 0:
        raise ValueError(f"per_method must be >= 0, got {per_method}")
    if per_method > smallest:
        counts = {name: len(x) for name, (x, _) in sets.items()}
        raise ValueError(f"per_method={per_method} exceeds the images of some method "
                         f"(counts {counts}); a balanced mix takes at most {smallest} from each")

    xs, ys = [x_clean], [y_clean]
    for x, y in sets.values():
        pick = rng.choice(len(x), size=per_method, replace=False)
        xs.append(x[pick])
        ys.append(y[pick])
    x_mix, y_mix = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(x_mix))
    return x_mix[order], y_mix[order]


def harden(net: Network, x_clean: np.ndarray, y_clean: np.ndarray, adversarial: Adversarial,
           seed: int = 0, epochs: int = 5, per_method: int | None = None) -> Network:
    """``net`` fine-tuned for ``epochs`` on :func:`training_mix` (Adam, lr 1e-3, sparse
    categorical cross-entropy on the logits, batch 32), as a new IR network.

    ``adversarial[method] = (x_adv, true_label)``.  Every weight starts from ``net`` (no
    random initialisation).  The same arguments and seed give the same weights: the sample
    and its order come from ``np.random.default_rng(seed)``, Keras's per-epoch shuffle from
    ``keras.utils.set_random_seed(seed)``.
    """
    from evaluation.keras_model import import_keras, from_keras, to_keras

    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    x_mix, y_mix = training_mix(net, x_clean, y_clean, adversarial,
                                np.random.default_rng(seed), per_method)

    keras = import_keras()
    keras.utils.set_random_seed(seed)
    model = to_keras(net, input_shape=(net.n_inputs,))     # inputs stay flat, as in the IR
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    if epochs > 0 and len(x_mix) > 0:
        model.fit(x_mix.astype(np.float32), y_mix, batch_size=BATCH_SIZE, epochs=epochs,
                  shuffle=True, verbose=0)
    return dataclasses.replace(from_keras(model, net), name=f"{net.name}_hardened")


def transfer_table(net: Network, hardened: Network, adversarial: Adversarial) -> dict[str, dict]:
    """Per method: ``n`` images, ``still_misclassified`` = share with
    ``argmax(hardened(x_adv)) != true label`` and ``original_misclassified`` = the same share
    under ``net`` (both None when ``n == 0``), evaluated on the IR networks in float64."""
    table = {}
    for name, (x, y) in adversarial.items():
        x, y = _checked(net, x, y, f"adversarial images of {name!r}")
        table[name] = {"n": len(x),
                       "still_misclassified": _misclassified_share(hardened, x, y),
                       "original_misclassified": _misclassified_share(net, x, y)}
    return table


def _misclassified_share(net: Network, x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) == 0:
        return None
    predicted = np.argmax(net(x), axis=1)
    return float(np.mean(predicted != y))


def _checked(net: Network, x, y, source: str) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` as float64 ``(n, n_inputs)`` and int64 ``(n,)``; a DataError naming
    ``source`` when they do not fit ``net``."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1) if len(x) else \
        np.zeros((0, net.n_inputs))
    y = np.asarray(y).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"{source}: {len(x)} images but {len(y)} labels")
    check_fits(x, y, net.n_inputs, net.n_outputs, source)
    return x, y.astype(np.int64)
