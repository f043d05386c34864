"""Frontends: files -> ``ir.network.Network``.  None of them imports TensorFlow."""
from __future__ import annotations

from pathlib import Path

from common.errors import FrontendError
from ir.network import Network

FORMATS = ".h5 / .hdf5 (Keras 2 legacy), .keras (Keras 3), .json + weights (Keras 2), .nnir"


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
    raise FrontendError(f"unknown model format {suffix!r}; supported: {FORMATS}", str(path))
