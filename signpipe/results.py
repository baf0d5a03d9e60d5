"""Packaging a completed recording's results for download."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from .pipeline import result_paths


def results_zip(output_dir: Path) -> bytes | None:
    """A ZIP holding supports.csv and signs.csv, built in memory (they are small), or None."""
    paths = result_paths(output_dir)
    if not all(path.is_file() for path in paths.values()):
        return None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, path in paths.items():
            zf.write(path, arcname=name)
    return buffer.getvalue()
