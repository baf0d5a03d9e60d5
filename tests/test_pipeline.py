"""The pipeline runner and the simulated pipeline's stdout contract and outputs."""

from __future__ import annotations

import csv
import sys
import time

import pytest
from factories import SIGN_HEADER, SUPPORT_HEADER, recording_files, track_rows, write_tree

from signpipe.config import PROJECT_ROOT
from signpipe.errors import PipelineFailed
from signpipe.pipeline import STAGES, parse_line, result_paths, run_pipeline

SCRIPT = str(PROJECT_ROOT / "simulate_pipeline.sh")


def test_parse_line_reads_stage_events_and_ignores_log_lines():
    start = parse_line("PIPELINE event=stage_start stage=s2_tracking index=3 total=8\n")
    assert (start.event, start.stage, start.index, start.total) == ("stage_start", "s2_tracking", 3, 8)
    end = parse_line("PIPELINE event=stage_end stage=s2_tracking index=3 total=8 status=ok elapsed=5.01")
    assert (end.status, end.elapsed) == ("ok", 5.01)
    assert parse_line("[s2_tracking] 120 tracks") is None
    assert parse_line("PIPELINE event=stage_start stage=x index=notanumber") is None
    assert parse_line("PIPELINE event=something_else stage=x index=1") is None


def run(tmp_path, rid="REC_A", command=SCRIPT, timeout=60, env=None):
    write_tree(tmp_path / "recordings", recording_files(rid))
    events = []
    out = tmp_path / "out" / rid
    run_pipeline(
        command,
        tmp_path / "recordings" / rid,
        out,
        tmp_path / "logs" / "pipeline.log",
        events.append,
        timeout,
        {"PIPELINE_STAGE_SECONDS": "0", **(env or {})},
    )
    return events, out


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_simulated_pipeline_runs_eight_stages_in_order(tmp_path):
    events, out = run(tmp_path)
    assert [(e.event, e.stage, e.index) for e in events] == [
        (kind, stage, i + 1) for i, stage in enumerate(STAGES) for kind in ("stage_start", "stage_end")
    ]
    assert all((out / stage).is_dir() for stage in STAGES)
    assert "stage_start" in (tmp_path / "logs" / "pipeline.log").read_text()


def test_results_have_the_headers_and_positions_along_the_own_track(tmp_path):
    _, out = run(tmp_path, rid="REC_A")
    supports = read_csv(result_paths(out)["supports.csv"])
    signs = read_csv(result_paths(out)["signs.csv"])
    assert supports[0] == SUPPORT_HEADER and signs[0] == SIGN_HEADER
    track = {(round(lat, 6), round(lon, 6)) for lat, lon in track_rows("REC_A")}
    assert len(supports) > 2
    for row in supports[1:]:
        assert (round(float(row[3]), 6), round(float(row[2]), 6)) in track
    support_ids = {row[0] for row in supports[1:]}
    assert {row[1] for row in signs[1:]} <= support_ids
    assert all(row[2][0] in "RWD" and "-" in row[2] for row in signs[1:])


def test_two_recordings_give_different_results(tmp_path):
    _, out_a = run(tmp_path / "a", rid="REC_A")
    _, out_b = run(tmp_path / "b", rid="REC_B")
    a = result_paths(out_a)["supports.csv"].read_text()
    b = result_paths(out_b)["supports.csv"].read_text()
    assert a != b


def test_failing_stage_raises_with_exit_code_and_log_tail(tmp_path):
    with pytest.raises(PipelineFailed) as info:
        run(tmp_path, env={"PIPELINE_FAIL_AT": "s3_small_track_filter"})
    details = info.value.details
    assert details["exit_code"] == 3 and details["stage"] == "s3_small_track_filter"
    assert any("simulated failure" in line for line in details["log_tail"])
    assert "s3_small_track_filter" in info.value.message


def test_hanging_pipeline_is_killed_at_the_timeout_with_its_children(tmp_path):
    script = tmp_path / "hang.sh"
    script.write_text('#!/bin/sh\necho started\nsleep 300 &\necho $! > "$2.child"\nwait\n')
    script.chmod(0o755)
    began = time.monotonic()
    with pytest.raises(PipelineFailed, match="timed out"):
        run(tmp_path, command=str(script), timeout=1)
    assert time.monotonic() - began < 15
    child = int((tmp_path / "out" / "REC_A.child").read_text())
    time.sleep(0.2)
    assert not alive(child)


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for its reaper."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_missing_results_fail_even_with_exit_zero(tmp_path):
    with pytest.raises(PipelineFailed, match="without writing"):
        run(tmp_path, command=f"{sys.executable} -c pass")


def test_command_that_cannot_start_fails_cleanly(tmp_path):
    with pytest.raises(PipelineFailed, match="could not start"):
        run(tmp_path, command=str(tmp_path / "no-such-command"))
