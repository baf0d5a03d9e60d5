"""Properties of the extractor: random names never escape; damaged archives never crash it."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path, PurePosixPath

import pytest
from factories import make_tar_bytes, make_zip_bytes, recording_files
from hypothesis import given, settings
from hypothesis import strategies as st

from signpipe.archive import Limits, extract_archive, member_path
from signpipe.errors import InvalidRecording, SignpipeError
from signpipe.validation import validate_recording

PIECES = st.sampled_from(
    ["..", ".", "", "a", "REC", "C:", "\\", "/", "\x00", "\u2215", "\uff0e\uff0e", "~", " "]
)
NAMES = st.one_of(
    st.text(min_size=0, max_size=80),
    st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=8).map("/".join),
    st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=8).map("".join),
)


@given(NAMES)
@settings(max_examples=600, deadline=None)
def test_member_path_is_either_refused_or_a_relative_path_that_stays_inside(name):
    try:
        rel = member_path(name)
    except SignpipeError:
        return
    if rel is None:
        return
    assert isinstance(rel, PurePosixPath) and not rel.is_absolute()
    assert ".." not in rel.parts and "" not in rel.parts
    base = Path("/srv/job")
    joined = Path(os.path.normpath(base.joinpath(*rel.parts)))
    assert joined == base or base in joined.parents
    assert all("\\" not in part and "\x00" not in part for part in rel.parts)


def _mutations(data: bytes, rng: random.Random) -> bytes:
    """Flip, overwrite, truncate or splice bytes of a valid archive."""
    data = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        action = rng.choice(("flip", "byte", "truncate", "splice"))
        position = rng.randrange(len(data)) if data else 0
        if action == "flip" and data:
            data[position] ^= 1 << rng.randrange(8)
        elif action == "byte" and data:
            data[position] = rng.choice((0, 0xFF, 0x7F, ord("/"), ord(".")))
        elif action == "truncate":
            del data[position:]
        elif action == "splice" and data:
            start = rng.randrange(len(data))
            data[position:position] = data[start : start + rng.randint(1, 64)]
    return bytes(data)


@pytest.mark.parametrize(
    "kind,build",
    [
        ("zip", lambda files: make_zip_bytes(files)),
        ("tar", lambda files: make_tar_bytes(files, compress=False)),
        ("tar.gz", lambda files: make_tar_bytes(files)),
    ],
)
def test_mutated_archives_extract_a_valid_tree_or_are_refused_cleanly(tmp_path, kind, build):
    original = build(recording_files("FUZZ"))
    rng = random.Random(f"fuzz-{kind}")
    outcomes = {"accepted": 0, "refused": 0}
    for round_ in range(1000):
        archive = tmp_path / f"m{round_}"
        archive.write_bytes(_mutations(original, rng))
        dest = Path(tempfile.mkdtemp(dir=tmp_path, prefix="job-"))
        try:
            validate_recording(extract_archive(archive, dest, kind, Limits(max_bytes=1024 * 1024)))
            outcomes["accepted"] += 1
        except (SignpipeError, InvalidRecording):
            outcomes["refused"] += 1
        for path in dest.rglob("*"):
            assert path.is_file() or path.is_dir(), path
            assert not path.is_symlink(), path
        shutil.rmtree(dest)
        archive.unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert outcomes["refused"] > 0
