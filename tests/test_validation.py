"""Validation of the recording tree: every problem reported at once, grouped."""

from __future__ import annotations

import pytest
from factories import DEVICE, IMEI, recording_files, without, write_tree

from signpipe.errors import InvalidRecording
from signpipe.validation import validate_recording

RID = "REC_001"
BASE = f"{RID}/{DEVICE}/{IMEI}"


def validate(tmp_path, files):
    write_tree(tmp_path, files)
    return validate_recording(tmp_path / RID)


def problems_of(tmp_path, files) -> dict:
    with pytest.raises(InvalidRecording) as info:
        validate(tmp_path, files)
    return info.value.details


def test_a_complete_recording_is_valid(tmp_path):
    assert validate(tmp_path, recording_files(RID)) == RID


@pytest.mark.parametrize("lat,lon", [("lat", "lng"), ("LATITUDE", "Long"), ("Lat", "lon")])
def test_location_columns_accept_usual_aliases(tmp_path, lat, lon):
    assert validate(tmp_path, recording_files(RID, lat_col=lat, lon_col=lon)) == RID


def test_every_missing_piece_is_reported_at_once(tmp_path):
    files = without(recording_files(RID), "/location/", "camera_params.csv", "_processed_acc", "calibration/")
    details = problems_of(tmp_path, files)
    assert details["missing_folders"] == [f"{BASE}/calibration", f"{BASE}/location"]
    assert details["missing_files"] == {
        f"{BASE}/camera": ["camera_params.csv"],
        f"{BASE}/processed": [f"{RID}_processed_acc.csv"],
    }
    assert len(details["problems"]) == 4


def test_calibration_needs_at_least_one_matching_file(tmp_path):
    files = without(recording_files(RID), "calibration/")
    files[f"{BASE}/calibration/readme.txt"] = b"hello"
    details = problems_of(tmp_path, files)
    assert details["missing_files"] == {f"{BASE}/calibration": ["*_calibration.csv"]}


def test_extra_device_and_imei_folders_are_reported(tmp_path):
    files = recording_files(RID)
    files[f"{RID}/zz-second-device/x/a.csv"] = b"a\n"
    files[f"{RID}/{DEVICE}/999999999999999/b.csv"] = b"a\n"
    details = problems_of(tmp_path, files)
    assert details["extra_folders"] == [f"{RID}/zz-second-device", f"{RID}/{DEVICE}/999999999999999"]


def test_missing_device_folder_is_reported(tmp_path):
    details = problems_of(tmp_path, {f"{RID}/notes.txt": b"x"})
    assert details["missing_folders"] == [f"{RID}/<device_id>"]


@pytest.mark.parametrize(
    "rel,content,problem",
    [
        (f"camera/{RID}_cam_{RID}.mp4", b"<html>not a video</html>", "not an MP4"),
        (f"acceleration/{RID}_acc.csv", b"", "empty"),
        (f"acceleration/{RID}_acc.csv", b"\xff\xfe\x00t\x00i\x00m\x00e", "not UTF-8"),
        (f"acceleration/{RID}_acc.csv", b"1,2,3\n4,5,6\n", "no header row"),
        (f"location/{RID}_loc_cleaned.csv", b"time,x,y\n1,2,3\n", "latitude/longitude"),
    ],
)
def test_contents_are_checked_cheaply(tmp_path, rel, content, problem):
    files = recording_files(RID)
    files[f"{BASE}/{rel}"] = content
    details = problems_of(tmp_path, files)
    assert [f["file"] for f in details["invalid_files"]] == [f"{BASE}/{rel}"]
    assert problem in details["invalid_files"][0]["problem"]


def test_root_name_must_be_a_safe_recording_id(tmp_path):
    bad = "REC 001"
    files = {rel.replace(RID, bad, 1): data for rel, data in recording_files(RID).items()}
    write_tree(tmp_path, files)
    with pytest.raises(InvalidRecording) as info:
        validate_recording(tmp_path / bad)
    assert "not a valid recording id" in info.value.details["problems"][0]
