"""Baseline attacks from the Adversarial Robustness Toolbox (ART), for ``netpatch bench``.

Optional: ``pip install '.[baselines]'``.  ART attacks a Keras copy of the IR network in
float32; every answer then goes through the same float64 checks as netpatch's own: the
change is clipped to the input domain, entries ART left unchanged stay exactly unchanged,
and a success counts only when the ORIGINAL IR network misclassifies the result.

Settings (one place, so the table can say them): FGSM and PGD are L-inf attacks with budget
``eps``; DeepFool and Carlini-Wagner L2 are unbounded minimal-perturbation attacks; JSMA is
targeted by nature, so every target class is run and the success with the fewest changed
inputs is kept (as users do for an untargeted comparison); the boundary attack is
decision-based (only labels), the pixel attack changes at most ``max_pixels`` pixels by
differential evolution.  ``l0fmn`` is Foolbox's L0 Fast Minimum Norm attack (untargeted,
``steps`` iterations, optional: Foolbox 3.3.4 with eagerpy) on the same Keras copy: a minimal
L0 attack, so it runs without a budget and its records count the values it changed (the
reports apply a pixel budget, as for the other minimal attacks).

The Keras copy (``evaluation.keras_model.to_keras``) computes every IR layer kind, so every
method runs on convolutional networks too; ART sees the image shape ``(H, W, C)`` (or the
network's own ``(C, H, W)`` for an NCHW network, then with ``channels_first``).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from common.errors import NetpatchError
from evaluation.records import make_record

METHODS = ("fgsm", "pgd", "deepfool", "jsma", "l0fmn", "cw", "boundary", "pixel")

DESCRIPTIONS = {
    "fgsm": "FGSM, L-inf eps",
    "pgd": "PGD, L-inf eps, 40 steps of eps/10",
    "deepfool": "DeepFool (minimal L2 step to the nearest boundary)",
    "jsma": "JSMA, every target class, fewest changed inputs kept",
    "l0fmn": "L0 FMN (Foolbox), 1000 steps, minimal L0",
    "cw": "Carlini-Wagner L2 (4 binary-search steps x 20 iterations)",
    "boundary": "Boundary attack (decision-based, 200 iterations)",
    "pixel": "Pixel attack (differential evolution, at most max_pixels pixels)",
}


@dataclass(frozen=True)
class BaselineConfig:
    eps: float = 0.1          # L-inf budget of FGSM and PGD
    max_pixels: int = 15      # pixels the pixel attack may change
    seed: int = 0
    steps: int = 1000         # iterations of L0 FMN


def require_art() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # before TensorFlow's first import
    try:
        import art  # noqa: F401
        import tensorflow  # noqa: F401
    except ModuleNotFoundError as err:
        raise NetpatchError(f"baseline attacks need {err.name}: pip install '.[baselines]'") from None


def require_foolbox() -> None:
    try:
        import foolbox  # noqa: F401
    except ModuleNotFoundError as err:
        raise NetpatchError(f"l0fmn needs {err.name}: pip install '.[baselines]'") from None


def image_shape_of(net, image_shape: Sequence[int] | None) -> tuple[int, ...]:
    """The shape ART sees: ``image_shape`` (H, W, C) when given, else the network's."""
    shape = tuple(image_shape) if image_shape else tuple(net.input_shape)
    if int(np.prod(shape)) != net.n_inputs:
        raise NetpatchError(f"image shape {shape} has {int(np.prod(shape))} values; "
                            f"the network takes {net.n_inputs}")
    return shape


def channels_first(net, shape: Sequence[int]) -> bool:
    """True when ``shape`` is the network's own ``(C, H, W)`` input: its first spatial layer
    is NCHW."""
    if tuple(shape) != tuple(net.input_shape) or len(shape) != 3:
        return False
    first = next((layer for layer in net.layers if hasattr(layer, "layout")), None)
    return first is not None and first.layout == "NCHW"


def classifier(net, shape: tuple[int, ...]):
    """ART's TensorFlow v2 wrapper around a float32 Keras copy of ``net`` taking inputs of
    ``shape`` (traced: :func:`traced`)."""
    require_art()
    import tensorflow as tf
    from art.estimators.classification import TensorFlowV2Classifier
    from evaluation.keras_model import to_keras
    return TensorFlowV2Classifier(
        model=traced(to_keras(net, shape)), nb_classes=net.n_outputs, input_shape=tuple(shape),
        loss_object=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        channels_first=channels_first(net, shape), clip_values=bounds(net))


def traced(keras_model) -> Callable:
    """``keras_model`` as a ``tf.function`` of the inputs alone.  ART and Foolbox compute
    their gradients eagerly, step by step; traced, JSMA and DeepFool run about twice as
    fast on the MNIST CNN, with the same results.  ART passes ``training`` and Foolbox does
    not: one traced signature for both (a Keras model traced as it is takes ``*args,
    **kwargs``, and TensorFlow 2.21 fails to relax its shapes across the two call forms).
    ``training`` changes nothing here: the copy has no dropout and no batch normalization."""
    import tensorflow as tf
    forward = tf.function(lambda x: keras_model(x, training=False), reduce_retracing=True)

    def model(x, training: bool = False):
        return forward(x)

    return model


def bounds(net) -> tuple[float, float]:
    """One range for every input value (what ART and Foolbox take): the domain's hull."""
    return float(np.min(net.domain.lower)), float(np.max(net.domain.upper))


def _attacks(clf, net, config: BaselineConfig) -> dict[str, Callable]:
    """Each method as ``generate(x32, labels) -> x_adv32`` (untargeted unless said)."""
    from art.attacks.evasion import (BoundaryAttack, CarliniL2Method, DeepFool,
                                     FastGradientMethod, PixelAttack,
                                     ProjectedGradientDescent)
    eps = config.eps

    def jsma(x32, labels):
        return _jsma_all_targets(clf, net, x32, labels)

    return {
        "fgsm": lambda x32, labels: FastGradientMethod(clf, eps=eps).generate(x32),
        "pgd": lambda x32, labels: ProjectedGradientDescent(
            clf, eps=eps, eps_step=eps / 10, max_iter=40, verbose=False).generate(x32),
        "deepfool": lambda x32, labels: DeepFool(clf, max_iter=50, nb_grads=net.n_outputs,
                                                 verbose=False).generate(x32),
        "jsma": jsma,
        "l0fmn": lambda x32, labels: _l0fmn(clf, net, x32, labels, config.steps),
        "cw": lambda x32, labels: CarliniL2Method(
            clf, max_iter=20, binary_search_steps=4, initial_const=1.0, learning_rate=0.1,
            batch_size=len(x32), verbose=False).generate(x32),
        "boundary": lambda x32, labels: BoundaryAttack(
            clf, targeted=False, max_iter=200, num_trial=10, verbose=False).generate(x32),
        "pixel": lambda x32, labels: PixelAttack(
            clf, th=config.max_pixels, es=0, max_iter=50, verbose=False).generate(x32),
    }


def _l0fmn(clf, net, x32, labels, steps: int):
    """Foolbox's L0 FMN, untargeted, on the classifier's model and bounds; per image the
    smallest adversarial change it found (the input unchanged when none)."""
    import foolbox
    import tensorflow as tf
    device = "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"
    model = foolbox.TensorFlowModel(clf.model, bounds=bounds(net), device=device)
    attack = _l0fmn_attack_class()(steps=steps)
    _, x_adv, _ = attack(model, tf.constant(x32), tf.constant(labels), epsilons=None)
    return x_adv.numpy()


def _l0fmn_attack_class():
    """Foolbox 3.3.4's ``L0FMNAttack`` with one fix.  Its L0 budget ``epsilon`` grows while
    an image resists and is capped at the number ``d`` of input values; ``project`` then
    reads position ``epsilon`` of each row's sorted ``|delta|``, out of range at ``d``
    (TensorFlow raises ``InvalidArgumentError`` and the whole batch is lost; seen on the
    MNIST CNN after about 100 steps).  Position ``d - 1`` keeps every value, which is what a
    budget of ``d`` means, so the budget is capped there."""
    import eagerpy as ep
    from foolbox.attacks import L0FMNAttack
    from foolbox.devutils import flatten

    class CappedL0FMNAttack(L0FMNAttack):
        def project(self, x, x0, epsilon):
            d = flatten(x0).shape[1]
            return super().project(x, x0, ep.minimum(epsilon, d - 1))

    return CappedL0FMNAttack


def _jsma_all_targets(clf, net, x32, labels):
    """JSMA towards every other class; per image the success with fewest changes (else the
    input unchanged).  Each target's images go through ART as one batch (ART's default is
    one image at a time; its images are attacked independently, so the results are the
    same, seen equal on the MNIST networks)."""
    from art.attacks.evasion import SaliencyMapMethod
    attack = SaliencyMapMethod(clf, theta=1.0, gamma=0.1, batch_size=max(len(x32), 1),
                               verbose=False)
    n = len(x32)
    best = x32.copy()
    best_count = np.full(n, np.inf)
    flat = x32.reshape(n, -1)
    for target in range(net.n_outputs):
        rows = np.flatnonzero(labels != target)
        if not len(rows):
            continue
        candidate = attack.generate(x32[rows], y=np.eye(net.n_outputs)[np.full(len(rows), target)])
        cflat = candidate.reshape(len(rows), -1).astype(np.float64)
        fooled = np.argmax(net(cflat), axis=1) != labels[rows]
        counts = np.count_nonzero(cflat != flat[rows], axis=1)
        better = fooled & (counts < best_count[rows])
        best[rows[better]] = candidate[better]
        best_count[rows[better]] = counts[better]
    return best


def to_adversarial(net, x: np.ndarray, x32: np.ndarray, xa32: np.ndarray) -> np.ndarray:
    """float64 adversarial inputs: ``x`` plus ART's change, exactly ``x`` where ART changed
    nothing (float32 cannot hold most float64 inputs), clipped to the domain."""
    change = xa32.reshape(len(x), -1).astype(np.float64) - x32.reshape(len(x), -1).astype(np.float64)
    return net.domain.clip(x + change)


def run_baseline(method: str, net, x: np.ndarray, labels: np.ndarray, config: BaselineConfig,
                 image_shape: Sequence[int] | None = None, indices: Sequence[int] | None = None,
                 clf=None) -> list[dict]:
    """Attack the rows of ``x`` (correctly classified images, true ``labels``) with one ART
    method, as one batch; one ``results.jsonl`` record per image.  ART works on batches, so
    the time per image is the batch's time divided by its size."""
    if method not in METHODS:
        raise NetpatchError(f"unknown baseline {method!r}; use one of {', '.join(METHODS)}")
    require_art()
    if method == "l0fmn":
        require_foolbox()
    shape = image_shape_of(net, image_shape)
    clf = clf or classifier(net, shape)
    labels = np.asarray(labels, dtype=np.int64)
    x32 = x.reshape((len(x),) + shape).astype(np.float32)
    np.random.seed(config.seed)     # ART draws from numpy's global generator
    t0 = time.perf_counter()
    xa32 = _attacks(clf, net, config)[method](x32, labels)
    per_image = (time.perf_counter() - t0) / max(len(x), 1)
    x_adv = to_adversarial(net, x, x32, xa32)
    predicted = np.argmax(net(x_adv), axis=1)
    indices = range(len(x)) if indices is None else indices
    groups = net.pixel_groups()
    return [_record(int(i), x[row], x_adv[row], int(labels[row]), int(predicted[row]), per_image,
                    groups)
            for row, i in enumerate(indices)]


def _record(index: int, xi, x_adv, label: int, predicted: int, seconds: float,
            groups=None) -> dict:
    success = predicted != label
    return make_record(index, label, xi, x_adv, success, "validated" if success else "failed",
                       "done" if success else "attack",
                       "" if success else "the original network still predicts the label",
                       adv_label=predicted, solve_s=seconds, total_s=seconds,
                       groups=groups)
