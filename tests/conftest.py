"""Shared test set-up: isolated caches, deterministic torch, CPU only.

Tests must pass on a fresh clone without ../shared: they build their own scenes and motion.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HOSIG_CACHE_DIR", os.path.join(os.environ.get("TMPDIR", "/tmp"), f"hosig-test-cache-{os.getpid()}"))
os.environ.pop("HOSIG_SMPLX_DIR", None)  # tests use the embedded mannequin unless they say otherwise


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
