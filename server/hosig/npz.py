"""Reading the project's .npz files (clips, grasps, datasets) with one clear error for the user."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from hosig.errors import InputError


def read_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """All arrays of an npz file, never unpickling; ``what`` names the file's role in errors
    (e.g. "clip file")."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise InputError(f"{what} {str(path)!r} is not a readable npz: {err}") from None
