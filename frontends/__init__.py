"""Frontends: files <-> ``ir.network.Network``.  None of them imports TensorFlow."""
from __future__ import annotations

from pathlib import Path

from common.errors import FrontendError
from ir.network import Network

FORMATS = (".h5 / .hdf5 (Keras 2 legacy), .keras (Keras 3), .json + weights (Keras 2), .onnx, "
           ".nnet (ACAS Xu NNet), .nnir")
SAVE_FORMATS = ".onnx, .nnir, .nnet (dense networks only)"


def load_network(path: str | Path, weights: str | Path | None = None) -> Network:
    """Read a network from any supported format, chosen by the file's extension."""
    path = Path(path)
    if not path.exists():
        raise FrontendError("no such file", str(path))
    suffix = path.suffix.lower()
    if suffix == ".nnir":
        from ir.text import load_nnir
        return load_nnir(path)
    if suffix in (".h5", ".hdf5", ".keras", ".json"):
        from frontends.keras import load_keras
        return load_keras(path, weights=weights)
    if suffix == ".onnx":
        from frontends.onnx import load_onnx
        return load_onnx(path)
    if suffix == ".nnet":
        from frontends.nnet import load_nnet
        return load_nnet(path)
    raise FrontendError(f"unknown model format {suffix!r}; supported: {FORMATS}", str(path))


def save_network(net: Network, path: str | Path) -> None:
    """Write ``net`` in the format chosen by the extension of ``path``: ``.onnx``
    (``frontends.onnx.save_onnx``), ``.nnir`` (``ir.text.dump_nnir``) or ``.nnet``
    (``frontends.nnet.save_nnet``, dense networks only)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from frontends.onnx import save_onnx
        save_onnx(net, path)
    elif suffix == ".nnir":
        from ir.text import dump_nnir
        dump_nnir(net, path)
    elif suffix == ".nnet":
        from frontends.nnet import save_nnet
        save_nnet(net, path)
    else:
        raise FrontendError(f"cannot write the format {suffix!r}; supported: {SAVE_FORMATS}",
                            str(path))
