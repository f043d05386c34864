"""Shared test helpers: where the shared reference data lives (``../shared/data``)."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips (with the path in the reason) when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    return SHARED_DATA


def require_backend(name: str) -> None:
    """Skip (with the backend's own reason) when a solver is not usable here."""
    from backends import get_backend
    from common.errors import SolverUnavailable
    try:
        get_backend(name)
    except SolverUnavailable as err:
        pytest.skip(f"backend {name}: {err}")
