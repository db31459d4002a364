"""Shared test set-up: isolated caches, deterministic torch, CPU only.

Tests must pass on a fresh clone without ../shared: they build their own scenes and motion.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

if "HOSIG_CACHE_DIR" not in os.environ:
    # One throw-away cache per test session (never the user's ~/.cache/hosig), removed at exit.
    _cache = tempfile.mkdtemp(prefix="hosig-test-cache-")
    os.environ["HOSIG_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
os.environ.pop("HOSIG_SMPLX_DIR", None)  # tests use the embedded mannequin unless they say otherwise


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
