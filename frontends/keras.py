"""Keras models -> ``ir.network.Network``, read with ``json``, ``zipfile`` and ``h5py`` only.

Loading never imports TensorFlow or Keras and never runs code stored in the file: the model
config is read as JSON and the weights as plain HDF5 arrays.

Formats (chosen by extension and content):

* Keras 2 legacy full model ``.h5``/``.hdf5``: root attribute ``model_config`` (JSON) and group
  ``model_weights/<layer>`` whose attribute ``weight_names`` lists the arrays in Keras order
  (kernel, bias).  Keras 3's ``model.save("x.h5")`` writes the same layout.
* Keras 3 ``.keras``: a zip holding ``config.json`` and ``model.weights.h5``.  The weights sit
  under ``layers/<key>/vars/0`` (kernel) and ``/1`` (bias), where ``<key>`` is NOT the layer's
  name but its snake-cased class name made unique in layer order (``dense``, ``dense_1``, ...);
  recent Keras 3 also stores the layer's name as the attribute ``vars.attrs["name"]``.
* Keras 2 JSON architecture plus a weights file (``model.to_json()`` and ``save_weights``):
  the weights default to ``NAME.weights.h5``, then ``NAME.h5``, beside the JSON.

Models: Sequential, or functional models that are a single chain from one input to one output.
Layers: Dense (activation relu or linear), ReLU (plain), Activation(relu|linear), InputLayer,
Flatten, Dropout (a no-op at inference).  Keras kernels are ``(n_in, n_out)``; the IR weight is
``(n_out, n_in)``, so each kernel is transposed once here.  The input domain is the box
``[0, 1]`` per input value (the file holds no domain).
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from common.errors import FrontendError, NetworkError
from ir.network import Domain, Layer, Linear, Network, ReLU

SUPPORTED_LAYERS = "Dense, ReLU, Activation(relu|linear), InputLayer, Flatten, Dropout"
MODEL_CLASSES = ("Sequential", "Functional", "Model")
LINEAR_ACTIVATIONS = (None, "linear")
KERAS3_WEIGHTS_ENTRY = "model.weights.h5"
KERAS3_CONFIG_ENTRY = "config.json"


@dataclass(frozen=True)
class KerasLayer:
    """One entry of a Keras model config: its name, class name and ``config`` dict."""

    name: str
    class_name: str
    config: dict

    def describe(self) -> str:
        return f"layer {self.name!r} ({self.class_name})"


@dataclass(frozen=True)
class _Context:
    """What the layer handlers need besides the layer: each Dense layer's arrays, and the files
    that hold the architecture and the weights (for messages)."""

    dense_arrays: Callable[[KerasLayer], list[np.ndarray]]
    model_source: str
    weights_source: str


Shape = tuple[int, ...]


# ---- entry point ---------------------------------------------------------------------------

def load_keras(path: str | Path, weights: str | Path | None = None) -> Network:
    """Read a Keras model file into a ``Network`` named after the file's stem.

    ``weights`` only applies to a ``.json`` architecture; other formats hold their weights.
    Raises ``FrontendError`` naming the file (and the layer, where one is at fault) for a
    missing, corrupt or unsupported file.
    """
    path = Path(path)
    _require_file(path)
    if path.suffix.lower() == ".json":
        return _load_json_and_weights(path, weights)
    if weights is not None:
        raise FrontendError(f"--weights applies only to a .json architecture; "
                            f"{path.name} already holds its weights", str(path))
    if zipfile.is_zipfile(path):
        return _load_keras3_archive(path)
    if path.suffix.lower() == ".keras":
        raise FrontendError("not a zip archive: a Keras 3 .keras file is a zip holding "
                            "config.json and model.weights.h5 (truncated or corrupt?)", str(path))
    return _load_legacy_h5(path)


def _load_json_and_weights(path: Path, weights: str | Path | None) -> Network:
    chain, input_shape = _parse_model(_read_text(path), str(path))
    weights_path = _weights_path(path, weights)
    return _read_hdf5(weights_path, lambda root: _build_network(
        chain, input_shape, root, path, str(weights_path)))


def _load_keras3_archive(path: Path) -> Network:
    config_text, weights_bytes = _read_archive(path)
    chain, input_shape = _parse_model(config_text, str(path))
    source = f"{path}!{KERAS3_WEIGHTS_ENTRY}"
    return _read_hdf5(io.BytesIO(weights_bytes), lambda root: _build_network(
        chain, input_shape, root, path, source), source)


def _load_legacy_h5(path: Path) -> Network:
    def lower(root: h5py.Group) -> Network:
        chain, input_shape = _parse_model(_legacy_model_config(root, path), str(path))
        return _build_network(chain, input_shape, root, path, str(path))

    return _read_hdf5(path, lower)


# ---- files ---------------------------------------------------------------------------------

def _require_file(path: Path) -> None:
    if not path.is_file():
        raise FrontendError("no such file", str(path))


def _weights_path(json_path: Path, weights: str | Path | None) -> Path:
    """The explicit weights file, or ``NAME.weights.h5`` / ``NAME.h5`` beside the JSON."""
    if weights is not None:
        weights = Path(weights)
        _require_file(weights)
        return weights
    candidates = [json_path.with_name(json_path.stem + ".weights.h5"), json_path.with_suffix(".h5")]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    tried = " and ".join(c.name for c in candidates)
    raise FrontendError(f"no weights file for this architecture: tried {tried} beside it; "
                        f"pass the weights with --weights FILE", str(json_path))


def _read_archive(path: Path) -> tuple[str, bytes]:
    """The ``config.json`` text and the ``model.weights.h5`` bytes of a ``.keras`` zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            missing = {KERAS3_CONFIG_ENTRY, KERAS3_WEIGHTS_ENTRY} - set(archive.namelist())
            if missing:
                raise FrontendError(f"not a Keras 3 archive: missing {sorted(missing)}, found "
                                    f"{sorted(archive.namelist())}", str(path))
            return (archive.read(KERAS3_CONFIG_ENTRY).decode("utf-8"),
                    archive.read(KERAS3_WEIGHTS_ENTRY))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as err:
        raise FrontendError(f"cannot read the .keras archive: {err}", str(path)) from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise FrontendError(f"cannot read: {err}", str(path)) from None


def _read_hdf5(file, read: Callable[[h5py.Group], object], source: str | None = None):
    """Open ``file`` (a path or a file-like object) with h5py and return ``read(root)``;
    h5py's ``OSError`` (not HDF5, truncated) becomes a ``FrontendError``."""
    source = source or str(file)
    try:
        with h5py.File(file, "r") as root:
            return read(root)
    except OSError as err:
        raise FrontendError(f"cannot read as HDF5 (not an HDF5 file, or truncated or corrupt): "
                            f"{err}", source) from None


def _text(value) -> str:
    """An HDF5 string attribute as ``str`` (h5py returns ``bytes`` for fixed-length strings)."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _legacy_model_config(root: h5py.Group, path: Path) -> str:
    """The ``model_config`` JSON of a legacy full-model HDF5 file."""
    if "model_config" in root.attrs:
        return _text(root.attrs["model_config"])
    if _is_weights_only(root):
        raise FrontendError("this HDF5 file holds weights only, no model architecture (no "
                            "'model_config' attribute): load the architecture JSON "
                            "(model.to_json()) and pass this file with --weights FILE", str(path))
    raise FrontendError("not a Keras model file: the HDF5 file has no 'model_config' attribute",
                        str(path))


def _is_weights_only(root: h5py.Group) -> bool:
    return "layer_names" in root.attrs or _is_keras3_store(root)


def _is_keras3_store(root: h5py.Group) -> bool:
    return "layers" in root and "vars" in root


# ---- model config --------------------------------------------------------------------------

def _parse_model(config_text: str, source: str) -> tuple[list[KerasLayer], Shape]:
    """The layer chain (input first) and the input shape (batch axis dropped) of a model
    config given as JSON text."""
    try:
        model = json.loads(config_text)
    except json.JSONDecodeError as err:
        raise FrontendError(f"not valid JSON: {err}", source) from None
    if not (isinstance(model, dict) and model.get("class_name") in MODEL_CLASSES
            and isinstance(model.get("config"), (dict, list))):
        raise FrontendError("not a Keras model: expected a JSON object with 'class_name' one of "
                            f"{', '.join(MODEL_CLASSES)} and a 'config'", source)
    try:
        if model["class_name"] == "Sequential":
            chain = _sequential_chain(model["config"])
        else:
            chain = _functional_chain(model["config"], source)
        return chain, _input_shape(model["config"], chain, source)
    except (KeyError, TypeError, IndexError, AttributeError) as err:
        raise FrontendError(f"malformed Keras model config ({type(err).__name__}: {err})",
                            source) from None


def _keras_layer(entry: dict) -> KerasLayer:
    config = entry.get("config") or {}
    return KerasLayer(entry.get("name") or config["name"], entry["class_name"], config)


def _sequential_chain(config: dict | list) -> list[KerasLayer]:
    """Keras 2.2 wrote a Sequential config as the bare list of layers; later versions nest it
    under ``layers``."""
    entries = config if isinstance(config, list) else config["layers"]
    return [_keras_layer(entry) for entry in entries]


def _functional_chain(config: dict, source: str) -> list[KerasLayer]:
    """Walk back from the single output to the single input; refuse anything but a chain."""
    entries = {_keras_layer(entry).name: entry for entry in config["layers"]}
    inputs, outputs = _layer_refs(config["input_layers"]), _layer_refs(config["output_layers"])
    if len(inputs) != 1 or len(outputs) != 1:
        raise FrontendError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs; "
                            "only single-chain models are supported", source)
    chain, name = [], outputs[0]
    while len(chain) <= len(entries):
        layer = _keras_layer(entries[name])
        chain.append(layer)
        inbound = _inbound_layer_names(entries[name].get("inbound_nodes", []))
        if not inbound:
            break
        if len(inbound) > 1:
            raise FrontendError(f"{layer.describe()} takes {len(inbound)} inputs "
                                f"({', '.join(map(repr, inbound))}); only models that are a "
                                "single chain of layers are supported", source)
        name = inbound[0]
    if chain[-1].name != inputs[0] or len(chain) != len(entries):
        off_chain = sorted(set(entries) - {layer.name for layer in chain})
        raise FrontendError("the model is not a single chain from its input to its output "
                            f"(layers off the chain: {off_chain})", source)
    return chain[::-1]


def _layer_refs(refs: list) -> list[str]:
    """Layer names of ``input_layers``/``output_layers``: Keras 2 writes ``[[name, 0, 0]]``,
    Keras 3 ``[name, 0, 0]`` for a single tensor."""
    if refs and isinstance(refs[0], str):
        return [refs[0]]
    return [ref[0] for ref in refs]


def _inbound_layer_names(node) -> list[str]:
    """Names of the layers feeding a functional layer, over all its call nodes.

    Keras 2 writes a call as a list of references ``[name, node, tensor, kwargs]``; Keras 3
    as ``{"args": [...], "kwargs": {...}}`` holding ``__keras_tensor__`` objects whose
    ``keras_history`` starts with the layer name.
    """
    if isinstance(node, dict):
        if node.get("class_name") == "__keras_tensor__":
            return [node["config"]["keras_history"][0]]
        return [name for value in node.values() for name in _inbound_layer_names(value)]
    if isinstance(node, list):
        if node and isinstance(node[0], str):
            return [node[0]]
        return [name for item in node for name in _inbound_layer_names(item)]
    return []


def _input_shape(model_config: dict | list, chain: list[KerasLayer], source: str) -> Shape:
    """The input shape without the batch axis: the first layer's ``batch_input_shape``
    (Keras 2) or ``batch_shape`` (Keras 3), from an InputLayer or a first layer given an input
    shape, else a Keras 2 Sequential's ``build_input_shape``."""
    first = chain[0].config if chain else {}
    candidates = [first.get("batch_input_shape"), first.get("batch_shape")]
    if isinstance(model_config, dict):
        candidates.append(model_config.get("build_input_shape"))
    shape = next((c for c in candidates if c), None)
    if shape is None:
        raise FrontendError("the model config does not give the input shape (no InputLayer and "
                            "no batch_input_shape on the first layer)", source)
    dims = shape[1:]
    if not dims or not all(isinstance(d, int) and d > 0 for d in dims):
        raise FrontendError(f"input shape {tuple(shape)} is not fixed: every axis but the "
                            "batch axis needs a size", source)
    return tuple(dims)


# ---- weights -------------------------------------------------------------------------------

def _weight_reader(root: h5py.Group, chain: list[KerasLayer],
                   source: str) -> Callable[[KerasLayer], list[np.ndarray]]:
    """A function giving a Dense layer's arrays in Keras order (kernel, then bias if any).

    Reads a Keras 3 store (``layers/.../vars``) or the Keras 2 layout (one group per layer
    name, at the root or under ``model_weights``)."""
    if _is_keras3_store(root):
        dense = [layer for layer in chain if layer.class_name == "Dense"]
        ordinals = {layer.name: i for i, layer in enumerate(dense)}
        return lambda layer: _keras3_arrays(root, layer, ordinals[layer.name], source)
    groups = root["model_weights"] if "model_weights" in root else root
    return lambda layer: _keras2_arrays(groups, layer, source)


def _keras3_arrays(root: h5py.Group, layer: KerasLayer, ordinal: int, source: str) -> list:
    """Keras 3 keys a layer's variables by class, not name: the ``ordinal``-th Dense layer is
    ``layers/dense`` (first) or ``layers/dense_<ordinal>``."""
    key = "layers/dense" if ordinal == 0 else f"layers/dense_{ordinal}"
    variables = root.get(f"{key}/vars")
    if variables is None:
        raise FrontendError(f"no weights for {layer.describe()}: group {key}/vars is missing",
                            source)
    stored_name = variables.attrs.get("name")
    if stored_name is not None and _text(stored_name) != layer.name:
        raise FrontendError(f"weights at {key} belong to layer {_text(stored_name)!r}, but the "
                            f"config puts {layer.describe()} there", source)
    keys = [str(i) for i in range(len(variables))]
    if set(variables) != set(keys):
        raise FrontendError(f"{layer.describe()}: expected variables {keys} under {key}/vars, "
                            f"found {sorted(variables)}", source)
    return [np.asarray(variables[k]) for k in keys]


def _keras2_arrays(groups: h5py.Group, layer: KerasLayer, source: str) -> list:
    """The datasets listed by the layer group's ``weight_names`` attribute, in that order."""
    group = groups.get(layer.name)
    if group is None:
        raise FrontendError(f"no weights for {layer.describe()}: the file has no group "
                            f"{layer.name!r}", source)
    names = [_text(name) for name in group.attrs.get("weight_names", [])]
    missing = [name for name in names if name not in group]
    if missing:
        raise FrontendError(f"no weights for {layer.describe()}: datasets {missing} are listed "
                            "but missing", source)
    return [np.asarray(group[name]) for name in names]


# ---- layers --------------------------------------------------------------------------------

def _build_network(chain: list[KerasLayer], input_shape: Shape, weights: h5py.Group,
                   path: Path, weights_source: str) -> Network:
    """Lower the chain layer by layer, reading each Dense layer's arrays from the open HDF5
    group ``weights``, then let the IR verify the result."""
    context = _Context(_weight_reader(weights, chain, weights_source), str(path), weights_source)
    layers: list[Layer] = []
    shape = input_shape
    for layer in chain:
        handler = _LAYER_HANDLERS.get(layer.class_name)
        if handler is None:
            raise FrontendError(f"{layer.describe()} is not supported; supported: "
                                f"{SUPPORTED_LAYERS}", context.model_source)
        lowered, shape = handler(layer, shape, context)
        for ir_layer in lowered:
            _append_collapsing_relus(layers, ir_layer)
    dense_names = [layer.name for layer in chain if layer.class_name == "Dense"]
    try:
        return Network(tuple(layers), Domain.box(int(np.prod(input_shape)), 0.0, 1.0),
                       input_shape=input_shape, name=path.stem)
    except NetworkError as err:
        where = (f" (edge-layer {err.layer} is Keras layer {dense_names[err.layer - 1]!r}; the "
                 "IR weight is (n_out, n_in), the Keras kernel transposed)"
                 if err.layer is not None and 0 < err.layer <= len(dense_names) else "")
        raise FrontendError(f"{err}{where}", context.weights_source) from None


def _append_collapsing_relus(layers: list[Layer], layer: Layer) -> None:
    """ReLU(ReLU(z)) == ReLU(z): a ReLU right after a ReLU adds nothing."""
    if not (isinstance(layer, ReLU) and layers and isinstance(layers[-1], ReLU)):
        layers.append(layer)


def _dense(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """``z = kernel.T @ a + bias``, then the activation; needs a flat input."""
    units = int(layer.config["units"])
    activation = _activation_layers(layer, layer.config.get("activation"), context)
    if len(shape) != 1:
        raise FrontendError(f"{layer.describe()} gets an input of shape {shape}; Dense on a "
                            "multi-axis input acts on the last axis only: add a Flatten before it",
                            context.model_source)
    use_bias = layer.config.get("use_bias", True)
    arrays = context.dense_arrays(layer)
    if len(arrays) != (2 if use_bias else 1):
        expected = "kernel and bias" if use_bias else "a kernel only (use_bias=False)"
        raise FrontendError(f"{layer.describe()} has {len(arrays)} weight arrays, expected "
                            f"{expected}", context.weights_source)
    kernel = arrays[0]
    bias = arrays[1] if use_bias else np.zeros(units)
    _check_shape(layer, "kernel", kernel.shape, (shape[0], units), context)
    _check_shape(layer, "bias", bias.shape, (units,), context)
    return [Linear(kernel.T, bias)] + activation, (units,)


def _check_shape(layer: KerasLayer, what: str, found: Shape, expected: Shape,
                 context: _Context) -> None:
    if tuple(found) != expected:
        raise FrontendError(f"{layer.describe()}: {what} has shape {tuple(found)} in the weights, "
                            f"but the architecture needs {expected}", context.weights_source)


def _activation_layers(layer: KerasLayer, activation, context: _Context) -> list[Layer]:
    """``[ReLU()]`` for relu, ``[]`` for linear; softmax and the rest are refused."""
    if activation == "relu":
        return [ReLU()]
    if activation in LINEAR_ACTIVATIONS:
        return []
    if activation == "softmax":
        raise FrontendError(f"{layer.describe()} has a softmax output; the IR has no softmax. "
                            "Softmax keeps the argmax, but properties are stated over the "
                            "logits: save the model with a linear last layer (the same weights "
                            "without the softmax)", context.model_source)
    raise FrontendError(f"{layer.describe()} has activation {activation!r}; supported: relu, "
                        "linear", context.model_source)


def _activation(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    return _activation_layers(layer, layer.config.get("activation"), context), shape


def _relu(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """A plain ReLU layer; a capped, leaky or thresholded one is not a ReLU."""
    config = layer.config
    if (config.get("max_value") is not None or config.get("negative_slope", 0.0)
            or config.get("threshold", 0.0)):
        raise FrontendError(f"{layer.describe()} has max_value={config.get('max_value')}, "
                            f"negative_slope={config.get('negative_slope')}, "
                            f"threshold={config.get('threshold')}; only a plain ReLU "
                            "(None, 0, 0) is supported", context.model_source)
    return [ReLU()], shape


def _flatten(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """Row-major flattening (channels_last); channels_first would reorder the values."""
    if len(shape) > 1 and layer.config.get("data_format") == "channels_first":
        raise FrontendError(f"{layer.describe()} uses data_format='channels_first', which "
                            "reorders the values; only channels_last is supported",
                            context.model_source)
    return [], (int(np.prod(shape)),)


def _identity(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """InputLayer, and Dropout (active only in training)."""
    return [], shape


LayerHandler = Callable[[KerasLayer, Shape, _Context], tuple[list[Layer], Shape]]

_LAYER_HANDLERS: dict[str, LayerHandler] = {
    "Dense": _dense,
    "ReLU": _relu,
    "Activation": _activation,
    "InputLayer": _identity,
    "Flatten": _flatten,
    "Dropout": _identity,
}
