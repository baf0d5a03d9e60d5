"""Where things live under DATA_DIR."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RECORDING_ID_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def is_valid_recording_id(value: str) -> bool:
    """A recording id is a folder name we can trust in paths and URLs."""
    return bool(RECORDING_ID_RE.match(value)) and value not in {".", ".."} and len(value) <= 200


@dataclass(frozen=True)
class DataLayout:
    """The folders of one DATA_DIR: uploads, per-job temp extracts and stored recordings."""

    root: Path

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def temp_extracts(self) -> Path:
        return self.root / "temp_extracts"

    @property
    def recordings(self) -> Path:
        return self.root / "recordings"

    def temp_for(self, job_id: str) -> Path:
        return self.temp_extracts / job_id

    def recording(self, recording_id: str) -> Path:
        return self.recordings / recording_id

    def results(self, recording_id: str) -> Path:
        return self.recording(recording_id) / "results"

    def logs(self, recording_id: str) -> Path:
        return self.recording(recording_id) / "logs"
