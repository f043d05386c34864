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

Layers, and what they become: see ``frontends.keras_layers``, which holds the layer handlers.
This module reads the files, walks the model config, finds each layer's stored arrays and
lowers the chain of layers through the handlers (``_build_network``).

Every stored array is checked against the shape the architecture declares before it is read,
and checked finite; every error names the file and the Keras layer at fault.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Callable

import h5py

from common.errors import FrontendError, NetworkError
from common.limits import (MAX_ARCHIVE_MEMBER_BYTES, MAX_TEXT_BYTES, read_limited,
                           read_text_file)
from frontends.keras_layers import (_LAYER_HANDLERS, SUPPORTED_LAYERS, KerasLayer, Shape,
                                    _append, _Context)
from ir.layers import Layer, Linear
from ir.network import Network

MODEL_CLASSES = ("Sequential", "Functional", "Model")
IMAGE_LAYERS = ("Conv2D", "MaxPooling2D", "AveragePooling2D", "ZeroPadding2D")
KERAS3_WEIGHTS_ENTRY = "model.weights.h5"
KERAS3_CONFIG_ENTRY = "config.json"


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
