"""Validation of an extracted recording tree: names, layout and cheap content checks.

Every problem is collected and reported at once, grouped, so an operator fixes all in one go.
"""

from __future__ import annotations

import codecs
import csv
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidRecording
from .storage import is_valid_recording_id

HEAD_BYTES = 64 * 1024
LAT_ALIASES = {"lat", "latitude"}
LON_ALIASES = {"lon", "lng", "long", "longitude"}
FOLDERS = ("acceleration", "calibration", "camera", "location", "processed")


def required_files(rid: str) -> dict[str, list[str]]:
    """The exact file names each folder must hold (calibration is checked by pattern)."""
    return {
        "acceleration": [f"{rid}_acc.csv"],
        "camera": [f"{rid}_cam_{rid}.mp4", "camera_params.csv"],
        "location": [f"{rid}_loc.csv", f"{rid}_loc_cleaned.csv"],
        "processed": [f"{rid}_processed_acc.csv", f"{rid}_processed_loc.csv"],
    }


@dataclass
class Report:
    """Problems found, grouped the way the page lists them."""

    problems: list[str] = field(default_factory=list)
    missing_folders: list[str] = field(default_factory=list)
    missing_files: dict[str, list[str]] = field(default_factory=dict)
    extra_folders: list[str] = field(default_factory=list)
    invalid_files: list[dict] = field(default_factory=list)

    def add(self, message: str) -> None:
        self.problems.append(message)

    def as_details(self) -> dict:
        return {
            "problems": self.problems,
            "missing_folders": self.missing_folders,
            "missing_files": self.missing_files,
            "extra_folders": self.extra_folders,
            "invalid_files": self.invalid_files,
        }


def validate_recording(root: Path) -> str:
    """Return the recording id of a valid tree at `root`; raise InvalidRecording with all problems."""
    rid = root.name
    report = Report()
    if not is_valid_recording_id(rid):
        report.add(f"Root folder name '{rid}' is not a valid recording id (letters, digits, _ . -)")
    base = _single_subfolder(root, "device", rid, report)
    if base is not None:
        base = _single_subfolder(base, "IMEI", f"{rid}/{base.name}", report)
    if base is not None:
        _check_folders(base, rid, report)
    if report.problems:
        count = len(report.problems)
        raise InvalidRecording(
            f"The recording is not valid: {count} problem{'s' if count > 1 else ''} found",
            report.as_details(),
        )
    return rid


def _single_subfolder(parent: Path, what: str, shown: str, report: Report) -> Path | None:
    folders = sorted(p for p in parent.iterdir() if p.is_dir())
    if not folders:
        report.missing_folders.append(f"{shown}/<{what.lower()}_id>")
        report.add(f"Missing the {what} folder inside {shown}/")
        return None
    for extra in folders[1:]:
        report.extra_folders.append(f"{shown}/{extra.name}")
        report.add(f"Extra {what} folder {shown}/{extra.name}/ (exactly one is expected)")
    return folders[0]


def _check_folders(base: Path, rid: str, report: Report) -> None:
    shown = base.relative_to(base.parents[2]).as_posix()
    required = required_files(rid)
    for folder in FOLDERS:
        path = base / folder
        if not path.is_dir():
            report.missing_folders.append(f"{shown}/{folder}")
            report.add(f"Missing folder {shown}/{folder}/")
            continue
        names = required.get(folder, [])
        missing = [n for n in names if not (path / n).is_file()]
        if folder == "calibration" and not any(path.glob("*_calibration.csv")):
            missing.append("*_calibration.csv")
        if missing:
            report.missing_files[f"{shown}/{folder}"] = missing
            report.add(f"Missing in {shown}/{folder}/: {', '.join(missing)}")
        present = [path / n for n in names if n not in missing]
        present += sorted(path.glob("*_calibration.csv")) if folder == "calibration" else []
        for file in present:
            problem = check_content(file, rid)
            if problem:
                report.invalid_files.append({"file": f"{shown}/{folder}/{file.name}", "problem": problem})
                report.add(f"{shown}/{folder}/{file.name}: {problem}")


def check_content(path: Path, rid: str) -> str | None:
    """A cheap look at a file's first bytes: an MP4's ftyp box, a CSV's text and header."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    if path.suffix.lower() == ".mp4":
        return None if head[4:8] == b"ftyp" else "not an MP4 video (no ISO-BMFF 'ftyp' box)"
    return _check_csv(head, is_location=path.parent.name == "location")


def _check_csv(head: bytes, is_location: bool) -> str | None:
    if not head.strip():
        return "the CSV file is empty"
    try:
        text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    if "\0" in text:
        return "not a text file"
    first_line = text.splitlines()[0] if text.splitlines() else ""
    header = [h.strip().lower() for h in next(csv.reader([first_line]), [])]
    if not any(h and not _is_number(h) for h in header):
        return "no header row"
    if is_location and not (LAT_ALIASES & set(header) and LON_ALIASES & set(header)):
        return "no latitude/longitude columns in the header"
    return None


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
