"""Keras models -> ``ir.network.Network``, read with ``json``, ``zipfile`` and ``h5py`` only.

Loading never imports TensorFlow or Keras and never runs code stored in the file: the model
config is read as JSON and the weights as plain HDF5 arrays.

Formats (chosen by extension and content):

* Keras 2 legacy full model ``.h5``/``.hdf5``: root attribute ``model_config`` (JSON) and group
  ``model_weights/<layer>`` whose attribute ``weight_names`` lists the arrays in Keras order
  (kernel, bias), each a path inside that group.  A layer name holding ``/`` (``clf/c1``) is a
  nested group path (``model_weights/clf/c1``, arrays at ``clf/c1/clf/c1/kernel:0``); a file
  that keeps an array directly in its layer's group under the last part of its name is read
  too.  Keras 3's ``model.save("x.h5")`` writes the same layout.
* Keras 3 ``.keras``: a zip holding ``config.json`` and ``model.weights.h5``.  A layer's arrays
  sit under ``layers/<key>/vars/0``, ``/1``, ... (Keras order), where ``<key>`` is NOT the
  layer's name but its snake-cased class name made unique per class in layer order
  (``conv2d``, ``conv2d_1``, ``batch_normalization``, ``dense``, ...); recent Keras 3 also
  stores the layer's name as the attribute ``vars.attrs["name"]``, which is checked.
* Keras 2 JSON architecture plus a weights file (``model.to_json()`` and ``save_weights``):
  the weights default to ``NAME.weights.h5``, then ``NAME.h5``, beside the JSON.

Models: Sequential, or functional models that are a single chain from one input to one output.
The input shape is the model's own, without the batch axis: ``(H, W, C)`` for channels_last
images, ``(C, H, W)`` for channels_first.  The network has no input domain (the file holds
none; commands take it from ``--domain``).

Layers, and what they become (the IR conventions are stated in ``ir.layers``):

* Dense -> ``Linear``; the Keras kernel ``(n_in, n_out)`` is transposed once to ``(n_out,
  n_in)``.  Needs a flat input (Dense on a multi-axis input acts on the last axis only).
* Conv2D -> ``Conv2D``; the kernel ``(kh, kw, c_in, c_out)`` is transposed once to ``(c_out,
  c_in, kh, kw)``.  data_format channels_last -> layout NHWC, channels_first -> NCHW.
  dilation_rate and groups other than 1 are refused.
* MaxPooling2D, AveragePooling2D -> ``MaxPool2D``, ``AvgPool2D`` (strides default to the pool
  size).  Average pooling never counts padding in its divisor (``count_include_pad=False``).
* padding 'same' (convolution and pooling) pads as TensorFlow does, per spatial axis of size
  ``n``, kernel ``k``, stride ``s``: ``total = max((ceil(n / s) - 1) * s + k - n, 0)``, then
  ``top = total // 2`` and ``bottom = total - top`` (likewise left and right).
* ZeroPadding2D -> ``Pad2D``, folded into the padding of a Conv2D right after it.
* BatchNormalization, at inference ``gamma * (x - moving_mean) / sqrt(moving_variance +
  epsilon) + beta`` over the channel axis (``center``/``scale`` say whether beta/gamma are
  stored) -> folded exactly into the Dense or Conv2D it directly follows (output channels of
  the kernel scaled, bias adjusted), else a ``Scale`` broadcast over the channel axis.
* Flatten -> ``Reshape((n,))`` (row-major; with data_format channels_first, Keras moves the
  channels last first: a ``Transpose`` before it); reshapes right before a Dense are dropped,
  as a ``Linear`` reads its input flat.  Reshape -> ``Reshape``.
* ReLU (plain), Activation(relu|linear), and activation relu|linear on Dense and Conv2D.  A
  softmax as the activation of the model's last layer (or a last Activation('softmax')) is
  dropped, with a note in ``Network.notes``: properties are stated over the logits and the
  argmax is unchanged.  A softmax anywhere else is refused.
* InputLayer, and Dropout (active only in training): nothing.

Every stored array is checked against the shape the architecture declares before it is read,
and checked finite; every error names the file and the Keras layer at fault.
"""
from __future__ import annotations

import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from common.errors import FrontendError, NetworkError
from common.limits import (MAX_ARCHIVE_MEMBER_BYTES, MAX_TEXT_BYTES, check_values,
                           read_limited, read_text_file)
from ir.layers import (AvgPool2D, Conv2D, Layer, Linear, MaxPool2D, Pad2D, ReLU, Reshape, Scale,
                       Transpose, output_shape)
from ir.network import Network

SUPPORTED_LAYERS = ("Dense, Conv2D, MaxPooling2D, AveragePooling2D, ZeroPadding2D, "
                    "BatchNormalization, Flatten, Reshape, ReLU, Activation(relu|linear), "
                    "InputLayer, Dropout")
MODEL_CLASSES = ("Sequential", "Functional", "Model")
LINEAR_ACTIVATIONS = (None, "linear")
DATA_FORMATS = {"channels_last": "NHWC", "channels_first": "NCHW"}
IMAGE_LAYERS = ("Conv2D", "MaxPooling2D", "AveragePooling2D", "ZeroPadding2D")
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


@dataclass
class _Context:
    """What the layer handlers share while lowering one model.

    ``stored_arrays`` gives a layer's HDF5 datasets in Keras order (not read yet);
    ``model_source``/``weights_source`` name the files in messages; ``last_layer`` is the name
    of the chain's last layer (the only place a softmax may be dropped); ``data_format`` is the
    image data format of the layers so far (it decides the channel axis of a batch
    normalization); ``notes`` collects what the lowering changed, for ``Network.notes``.
    """

    stored_arrays: Callable[[KerasLayer], list[h5py.Dataset]]
    model_source: str
    weights_source: str
    last_layer: str
    data_format: str
    notes: list[str] = field(default_factory=list)


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
            error = lambda message: FrontendError(message, str(path))   # noqa: E731
            with archive.open(KERAS3_CONFIG_ENTRY) as member:
                config = read_limited(member, MAX_TEXT_BYTES, KERAS3_CONFIG_ENTRY, error)
            with archive.open(KERAS3_WEIGHTS_ENTRY) as member:
                weights = read_limited(member, MAX_ARCHIVE_MEMBER_BYTES, KERAS3_WEIGHTS_ENTRY,
                                       error)
            return config.decode("utf-8"), weights
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as err:
        raise FrontendError(f"cannot read the .keras archive: {err}", str(path)) from None


def _read_text(path: Path) -> str:
    return read_text_file(path, "Keras architecture", FrontendError)


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
                   source: str) -> Callable[[KerasLayer], list[h5py.Dataset]]:
    """A function giving a layer's stored arrays in Keras order (e.g. kernel, then bias), as
    HDF5 datasets not read yet.

    Reads a Keras 3 store (``layers/.../vars``) or the Keras 2 layout (one group per layer
    name, at the root or under ``model_weights``)."""
    if _is_keras3_store(root):
        keys = _keras3_keys(chain)
        return lambda layer: _keras3_arrays(root, layer, keys[layer.name], source)
    groups = root["model_weights"] if "model_weights" in root else root
    return lambda layer: _keras2_arrays(groups, layer, source)


def snake_case(class_name: str) -> str:
    """Keras 3's ``to_snake_case``: ``Conv2D`` -> ``conv2d``, ``BatchNormalization`` ->
    ``batch_normalization``."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras3_keys(chain: list[KerasLayer]) -> dict[str, str]:
    """Each layer's key under ``layers/`` in a Keras 3 store: the snake-cased class name, then
    ``_1``, ``_2``, ... for later layers of the same class."""
    keys, used = {}, {}
    for layer in chain:
        base = snake_case(layer.class_name)
        keys[layer.name] = f"{base}_{used[base]}" if base in used else base
        used[base] = used.get(base, 0) + 1
    return keys


def _keras3_arrays(root: h5py.Group, layer: KerasLayer, key: str, source: str) -> list:
    """The datasets ``layers/<key>/vars/0``, ``/1``, ... of one layer."""
    group = f"layers/{key}/vars"
    variables = root.get(group)
    if variables is None:
        raise FrontendError(f"no weights for {layer.describe()}: group {group} is missing",
                            source)
    stored_name = variables.attrs.get("name")
    if stored_name is not None and _text(stored_name) != layer.name:
        raise FrontendError(f"weights at layers/{key} belong to layer {_text(stored_name)!r}, "
                            f"but the config puts {layer.describe()} there", source)
    keys = [str(i) for i in range(len(variables))]
    if set(variables) != set(keys):
        raise FrontendError(f"{layer.describe()}: expected variables {keys} under {group}, "
                            f"found {sorted(variables)}", source)
    return [_dataset(variables, k, layer, source) for k in keys]


def _keras2_arrays(groups: h5py.Group, layer: KerasLayer, source: str) -> list:
    """The datasets listed by the layer group's ``weight_names`` attribute, in that order.

    The group is found by the layer's name (a name with ``/`` is a nested path); each listed
    name is a path inside that group, or, in a flat group, its last part."""
    group = groups.get(layer.name)
    if not isinstance(group, h5py.Group):
        raise FrontendError(f"no weights for {layer.describe()}: the file has no group "
                            f"{layer.name!r}", source)
    names = [_text(name) for name in group.attrs.get("weight_names", [])]
    found = [name if name in group else name.rsplit("/", 1)[-1] for name in names]
    missing = [name for name, path in zip(names, found) if path not in group]
    if missing:
        raise FrontendError(f"no weights for {layer.describe()}: datasets {missing} are listed "
                            "but missing", source)
    return [_dataset(group, path, layer, source) for path in found]


def _dataset(group: h5py.Group, path: str, layer: KerasLayer, source: str) -> h5py.Dataset:
    item = group[path]
    if not isinstance(item, h5py.Dataset):
        raise FrontendError(f"{layer.describe()}: {item.name} is a group, expected an array",
                            source)
    return item


def _read_weights(layer: KerasLayer, expected: list[tuple[str, Shape]], context: _Context,
                  hint: str = "") -> list[np.ndarray]:
    """The layer's stored arrays as float64, given ``(what, shape)`` for each in Keras order.

    The count and every shape are checked against the architecture before any array is read
    (a wrong file fails fast, without reading a huge array), then every value is checked
    finite.  ``hint`` ends a shape mismatch message."""
    stored = context.stored_arrays(layer)
    if len(stored) != len(expected):
        names = ", ".join(what for what, _ in expected)
        raise FrontendError(f"{layer.describe()} has {len(stored)} weight arrays, expected "
                            f"{len(expected)} ({names})", context.weights_source)
    arrays = []
    for dataset, (what, shape) in zip(stored, expected):
        check_values(shape, f"{layer.describe()}: {what}",
                     lambda m: FrontendError(m, context.weights_source))
        _check_shape(layer, what, dataset.shape, shape, context, hint)
        _check_stored(layer, what, dataset, context)
        try:
            array = np.asarray(dataset, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise FrontendError(f"{layer.describe()}: {what} is not numeric ({err})",
                                context.weights_source) from None
        bad = np.argwhere(~np.isfinite(array))
        if len(bad):
            at = tuple(int(i) for i in bad[0])
            raise FrontendError(f"{layer.describe()}: {what} holds a non-finite value "
                                f"{array[at]} at {at}", context.weights_source)
        arrays.append(array)
    return arrays


def _check_stored(layer: KerasLayer, what: str, dataset: h5py.Dataset, context: _Context) -> None:
    """An uncompressed dataset must hold its bytes (an unwritten one reads as zeros: a
    declared 64 GiB kernel in a 1 kB file)."""
    if dataset.compression is None and dataset.chunks is None:
        stored = dataset.id.get_storage_size()
        if stored < dataset.size * dataset.dtype.itemsize:
            raise FrontendError(f"{layer.describe()}: {what} declares shape {dataset.shape} but "
                                f"the file stores only {stored:,} bytes of it (not written, or "
                                "truncated)", context.weights_source)


def _check_shape(layer: KerasLayer, what: str, found: Shape, expected: Shape,
                 context: _Context, hint: str = "") -> None:
    if tuple(found) != tuple(expected):
        raise FrontendError(f"{layer.describe()}: {what} has shape {tuple(found)} in the weights, "
                            f"but the architecture needs {tuple(expected)}{hint}",
                            context.weights_source)


# ---- lowering ------------------------------------------------------------------------------

def _build_network(chain: list[KerasLayer], input_shape: Shape, weights: h5py.Group,
                   path: Path, weights_source: str) -> Network:
    """Lower the chain layer by layer, reading each layer's arrays from the open HDF5 group
    ``weights``, then let the IR verify the result."""
    context = _Context(_weight_reader(weights, chain, weights_source), str(path), weights_source,
                       last_layer=chain[-1].name if chain else "",
                       data_format=_first_data_format(chain))
    lowered: list[tuple[Layer, KerasLayer]] = []
    shape = input_shape
    for layer in chain:
        handler = _LAYER_HANDLERS.get(layer.class_name)
        if handler is None:
            raise FrontendError(f"{layer.describe()} is not supported; supported: "
                                f"{SUPPORTED_LAYERS}", context.model_source)
        try:
            ir_layers, shape = handler(layer, shape, context)
        except (KeyError, TypeError, ValueError) as err:   # a config value of the wrong kind
            raise FrontendError(f"{layer.describe()}: malformed config "
                                f"({type(err).__name__}: {err})", context.model_source) from None
        for ir_layer in ir_layers:
            _append(lowered, ir_layer, layer)
    try:
        return Network(tuple(ir_layer for ir_layer, _ in lowered),
                       None, input_shape=input_shape,
                       name=path.stem, notes=tuple(context.notes))
    except NetworkError as err:
        raise FrontendError(f"{err}{_origin(err, lowered)}", context.weights_source) from None


def _first_data_format(chain: list[KerasLayer]) -> str:
    """The data format of the first image layer (channels_last when there is none): the
    channel axis of a batch normalization that comes before any image layer."""
    for layer in chain:
        if layer.class_name in IMAGE_LAYERS:
            return layer.config.get("data_format") or "channels_last"
    return "channels_last"


def _origin(err: NetworkError, lowered: list[tuple[Layer, KerasLayer]]) -> str:
    """Which Keras layer an IR error is about, from ``position`` or the dense-layer count."""
    if err.position is not None and 0 <= err.position < len(lowered):
        ir_layer, origin = lowered[err.position]
    elif err.layer is not None:
        dense = [pair for pair in lowered if isinstance(pair[0], Linear)]
        if not 0 < err.layer <= len(dense):
            return ""
        ir_layer, origin = dense[err.layer - 1]
    else:
        return ""
    if isinstance(ir_layer, Linear):
        return (f" (from Keras {origin.describe()}; the IR weight is (n_out, n_in), the Keras "
                "kernel transposed)")
    return f" (from Keras {origin.describe()})"


def _append(lowered: list[tuple[Layer, KerasLayer]], layer: Layer, origin: KerasLayer) -> None:
    """Add ``layer`` (made from Keras layer ``origin``), simplifying exactly where it meets the
    layer before it:

    * ReLU(ReLU(z)) is ReLU(z);
    * a ``Linear`` reads its input flat, so reshapes right before it go;
    * a zero padding right before a convolution of the same layout joins its padding;
    * a per-channel ``Scale`` (a batch normalization) right after a ``Linear`` or a
      ``Conv2D`` goes into its weight and bias.
    """
    if isinstance(layer, Linear):
        while lowered and isinstance(lowered[-1][0], Reshape):
            lowered.pop()
    previous = lowered[-1][0] if lowered else None
    if isinstance(layer, ReLU) and isinstance(previous, ReLU):
        return
    if (isinstance(layer, Conv2D) and isinstance(previous, Pad2D)
            and previous.layout == layer.layout):
        padding = tuple(a + b for a, b in zip(previous.padding, layer.padding))
        lowered[-1] = (replace(layer, padding=padding), origin)
        return
    if isinstance(layer, Scale):
        folded = _fold_scale(previous, layer)
        if folded is not None:
            lowered[-1] = (folded, lowered[-1][1])
            return
    lowered.append((layer, origin))


def _fold_scale(previous: Layer | None, scale: Scale) -> Layer | None:
    """``scale(previous(a))`` as one layer when ``previous`` is a ``Linear``, or a ``Conv2D``
    and the scale is the same at every position of a channel; else None.

    ``mul * (W a + b) + add == (mul W) a + (mul b + add)``, ``mul`` scaling output rows
    (output channels of a convolution)."""
    if isinstance(previous, Linear) and scale.mul.shape == (previous.n_out,):
        return Linear(scale.mul[:, None] * previous.weight, scale.mul * previous.bias + scale.add)
    if isinstance(previous, Conv2D):
        channels = previous.weight.shape[0]
        mul = _per_channel(scale.mul, channels, previous.layout)
        add = _per_channel(scale.add, channels, previous.layout)
        if mul is not None and add is not None:
            return replace(previous, weight=mul[:, None, None, None] * previous.weight,
                           bias=mul * previous.bias + add)
    return None


def _per_channel(values: np.ndarray, channels: int, layout: str) -> np.ndarray | None:
    """The one value per channel of a flat image tensor in ``layout``, or None when the values
    vary within a channel."""
    if values.size % channels:
        return None
    grid = values.reshape(-1, channels) if layout == "NHWC" else values.reshape(channels, -1).T
    return grid[0] if np.all(grid == grid[0]) else None


def _ir_shape(layer: KerasLayer, ir_layer: Layer, shape: Shape, context: _Context) -> Shape:
    """The shape ``ir_layer`` makes of ``shape``, as the IR computes it; its complaint names
    the Keras layer."""
    try:
        return output_shape(ir_layer, shape)
    except NetworkError as err:
        raise FrontendError(f"{layer.describe()} on an input of shape {shape}: {err}",
                            context.model_source) from None


# ---- layer handlers: (Keras layer, input shape, context) -> (IR layers, output shape) -------

def _dense(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """``z = kernel.T @ a + bias``, then the activation; needs a flat input."""
    units = int(layer.config["units"])
    if len(shape) != 1:
        raise FrontendError(f"{layer.describe()} gets an input of shape {shape}; Dense on a "
                            "multi-axis input acts on the last axis only: add a Flatten before it",
                            context.model_source)
    activation = _activation_layers(layer, layer.config.get("activation"), (units,), context)
    use_bias = layer.config.get("use_bias", True)
    expected = [("kernel", (shape[0], units))] + ([("bias", (units,))] if use_bias else [])
    arrays = _read_weights(layer, expected, context)
    bias = arrays[1] if use_bias else np.zeros(units)
    return [Linear(arrays[0].T, bias)] + activation, (units,)


def _conv2d(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """Cross-correlation with ``filters`` kernels, then the activation."""
    config = layer.config
    for option in ("dilation_rate", "groups"):
        value = config.get(option, 1)
        if any(v != 1 for v in (value if isinstance(value, list) else [value])):
            raise FrontendError(f"{layer.describe()} has {option}={value}; only {option}=1 is "
                                "supported", context.model_source)
    layout, (height, width, channels) = _image(layer, shape, context)
    kernel_size = _pair(layer, "kernel_size", config["kernel_size"], context)
    stride = _pair(layer, "strides", config.get("strides", 1), context)
    padding = _padding(layer, (height, width), kernel_size, stride, context)
    filters = int(config["filters"])
    use_bias = config.get("use_bias", True)
    expected = [("kernel", (*kernel_size, channels, filters))]
    expected += [("bias", (filters,))] if use_bias else []
    arrays = _read_weights(layer, expected, context,
                           hint=f" (kh, kw, c_in, c_out) for an input of shape {shape}, "
                                f"{channels} channels in layout {layout}")
    bias = arrays[1] if use_bias else np.zeros(filters)
    conv = Conv2D(np.ascontiguousarray(arrays[0].transpose(3, 2, 0, 1)), bias, stride, padding,
                  layout)
    out = _ir_shape(layer, conv, shape, context)
    return [conv] + _activation_layers(layer, config.get("activation"), out, context), out


def _max_pooling(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """The maximum over each window; padded positions never win."""
    pool = MaxPool2D(*_pool_geometry(layer, shape, context))
    return [pool], _ir_shape(layer, pool, shape, context)


def _average_pooling(layer: KerasLayer, shape: Shape,
                     context: _Context) -> tuple[list[Layer], Shape]:
    """The mean over each window; 'same' padding is left out of the divisor, as in Keras."""
    pool = AvgPool2D(*_pool_geometry(layer, shape, context), count_include_pad=False)
    return [pool], _ir_shape(layer, pool, shape, context)


def _pool_geometry(layer: KerasLayer, shape: Shape, context: _Context):
    """``(kernel, stride, padding, layout)`` of a pooling layer; strides default to the pool
    size."""
    layout, (height, width, _) = _image(layer, shape, context)
    kernel = _pair(layer, "pool_size", layer.config.get("pool_size", 2), context)
    stride = _pair(layer, "strides", layer.config.get("strides") or kernel, context)
    return kernel, stride, _padding(layer, (height, width), kernel, stride, context), layout


def _zero_padding(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """Zeros around the image; ``padding`` is ``p``, ``(ph, pw)`` or ``((top, bottom), (left,
    right))``."""
    layout, _ = _image(layer, shape, context)
    value = layer.config.get("padding", 1)
    pairs = [_pair(layer, "padding", v, context)
             for v in (value if isinstance(value, list) else [value, value])]
    if len(pairs) != 2 or any(p < 0 for pair in pairs for p in pair):
        raise FrontendError(f"{layer.describe()} has padding={value}; expected p, (ph, pw) or "
                            "((top, bottom), (left, right)) of whole numbers >= 0",
                            context.model_source)
    (top, bottom), (left, right) = pairs
    pad = Pad2D((top, left, bottom, right), layout)
    return [pad], _ir_shape(layer, pad, shape, context)


def _batch_normalization(layer: KerasLayer, shape: Shape,
                         context: _Context) -> tuple[list[Layer], Shape]:
    """``mul * x + add`` per channel with ``mul = gamma / sqrt(moving_variance + epsilon)`` and
    ``add = beta - moving_mean * mul``, as a ``Scale`` over the whole tensor (``_append`` folds
    it into a Dense or Conv2D right before it)."""
    config = layer.config
    axis = _channel_axis(layer, shape, context)
    channels = shape[axis]
    names = (["gamma"] if config.get("scale", True) else []) + \
            (["beta"] if config.get("center", True) else []) + ["moving_mean", "moving_variance"]
    arrays = dict(zip(names, _read_weights(layer, [(name, (channels,)) for name in names],
                                           context)))
    variance = arrays["moving_variance"] + float(config.get("epsilon", 1e-3))
    if np.any(variance <= 0):
        channel = int(np.argmax(variance <= 0))
        raise FrontendError(f"{layer.describe()}: moving_variance + epsilon is {variance[channel]} "
                            f"<= 0 for channel {channel}", context.weights_source)
    mul = arrays.get("gamma", 1.0) / np.sqrt(variance)
    add = arrays.get("beta", 0.0) - arrays["moving_mean"] * mul
    along = [1] * len(shape)
    along[axis] = channels
    flat = [np.broadcast_to(v.reshape(along), shape).ravel() for v in (mul, add)]
    return [Scale(*flat)], shape


def _channel_axis(layer: KerasLayer, shape: Shape, context: _Context) -> int:
    """The axis (0-based, no batch axis) a batch normalization normalizes: its ``axis`` must be
    the channel axis, the last one, or the first of an image in channels_first format."""
    axis = layer.config.get("axis", -1)
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    rank = len(shape) + 1                                   # Keras counts the batch axis
    channel = 1 if len(shape) == 3 and context.data_format == "channels_first" else len(shape)
    if not isinstance(axis, int) or not -rank <= axis < rank or axis % rank != channel:
        raise FrontendError(f"{layer.describe()} normalizes axis {axis} of an input of shape "
                            f"(batch, {', '.join(map(str, shape))}); only the channel axis is "
                            f"supported ({channel} here, data_format {context.data_format})",
                            context.model_source)
    return channel - 1


def _flatten(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """Row-major flattening; with data_format channels_first Keras moves the channels last
    first."""
    if len(shape) == 1:
        return [], shape
    n = int(np.prod(shape))
    layers: list[Layer] = [Reshape((n,))]
    if layer.config.get("data_format") == "channels_first":
        layers.insert(0, Transpose((*range(1, len(shape)), 0)))
    return layers, (n,)


def _reshape(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """The same values in ``target_shape`` (one axis may be -1: whatever is left)."""
    target = [int(d) for d in layer.config["target_shape"]]
    n = int(np.prod(shape))
    known = int(np.prod([d for d in target if d != -1]))
    if target.count(-1) == 1 and known > 0 and n % known == 0:
        target[target.index(-1)] = n // known
    reshape = Reshape(tuple(target))
    return [reshape], _ir_shape(layer, reshape, shape, context)


def _activation_layers(layer: KerasLayer, activation, out_shape: Shape,
                       context: _Context) -> list[Layer]:
    """``[ReLU()]`` for relu, ``[]`` for linear and for a final softmax over a flat output
    (dropped with a note); any other softmax and the rest are refused."""
    if activation == "relu":
        return [ReLU()]
    if activation in LINEAR_ACTIVATIONS:
        return []
    if activation == "softmax":
        if layer.name == context.last_layer and len(out_shape) == 1:
            context.notes.append(f"final softmax of layer {layer.name!r} dropped: properties are "
                                 "stated over the logits (the argmax is unchanged)")
            return []
        where = ("the model's last layer but over the last axis of an output of shape "
                 f"{out_shape}" if layer.name == context.last_layer else "not the last layer")
        raise FrontendError(f"{layer.describe()} has a softmax activation and is {where}; the IR "
                            "has no softmax, and only a final softmax over a flat output can be "
                            "dropped (it keeps the argmax)", context.model_source)
    raise FrontendError(f"{layer.describe()} has activation {activation!r}; supported: relu, "
                        "linear (and softmax as the last layer)", context.model_source)


def _activation(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    return _activation_layers(layer, layer.config.get("activation"), shape, context), shape


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


def _identity(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[list[Layer], Shape]:
    """InputLayer, and Dropout (active only in training)."""
    return [], shape


# ---- image geometry ------------------------------------------------------------------------

def _image(layer: KerasLayer, shape: Shape, context: _Context) -> tuple[str, tuple[int, int, int]]:
    """The IR layout of an image layer and ``(height, width, channels)`` of its input; records
    the layer's data format as the current one."""
    data_format = layer.config.get("data_format") or "channels_last"
    if data_format not in DATA_FORMATS:
        raise FrontendError(f"{layer.describe()} has data_format={data_format!r}; supported: "
                            f"{', '.join(DATA_FORMATS)}", context.model_source)
    if len(shape) != 3:
        axes = "(height, width, channels)" if data_format == "channels_last" else \
            "(channels, height, width)"
        raise FrontendError(f"{layer.describe()} needs an image input {axes}, got shape {shape}",
                            context.model_source)
    context.data_format = data_format
    if data_format == "channels_last":
        return "NHWC", shape
    return "NCHW", (shape[1], shape[2], shape[0])


def _pair(layer: KerasLayer, option: str, value, context: _Context) -> tuple[int, int]:
    """``n`` or ``[a, b]`` as ``(a, b)`` of whole numbers."""
    pair = [value, value] if isinstance(value, int) else value
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)):
        raise FrontendError(f"{layer.describe()} has {option}={value!r}; expected a whole number "
                            "or a pair of them", context.model_source)
    return int(pair[0]), int(pair[1])


def _padding(layer: KerasLayer, sizes: tuple[int, int], kernel: tuple[int, int],
             stride: tuple[int, int], context: _Context) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` for padding 'valid' (none) or 'same' (TensorFlow's rule:
    ``total = max((ceil(n / s) - 1) * s + k - n, 0)`` per axis, the smaller half first)."""
    mode = str(layer.config.get("padding", "valid")).lower()
    if mode == "valid":
        return (0, 0, 0, 0)
    if mode != "same":
        raise FrontendError(f"{layer.describe()} has padding={mode!r}; supported: 'valid', "
                            "'same'", context.model_source)
    totals = [max((math.ceil(n / s) - 1) * s + k - n, 0)
              for n, k, s in zip(sizes, kernel, stride)]
    (top, left), (bottom, right) = [t // 2 for t in totals], [t - t // 2 for t in totals]
    return (top, left, bottom, right)


LayerHandler = Callable[[KerasLayer, Shape, _Context], tuple[list[Layer], Shape]]

_LAYER_HANDLERS: dict[str, LayerHandler] = {
    "Dense": _dense,
    "Conv2D": _conv2d,
    "MaxPooling2D": _max_pooling,
    "AveragePooling2D": _average_pooling,
    "ZeroPadding2D": _zero_padding,
    "BatchNormalization": _batch_normalization,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "ReLU": _relu,
    "Activation": _activation,
    "InputLayer": _identity,
    "Dropout": _identity,
}
