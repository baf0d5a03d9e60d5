"""Recordings API, status page, results download and health."""

from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest

from signpipe import catalog
from signpipe.db import db
from signpipe.models import Recording, utcnow


def add(rid: str, status: str = "queued", minutes_ago: int = 0, **fields) -> None:
    with db.transaction() as session:
        session.add(
            Recording(id=rid, status=status, created_at=utcnow() - timedelta(minutes=minutes_ago), **fields)
        )


def write_results(app, rid: str) -> None:
    from pathlib import Path

    out = Path(app.config["DATA_DIR"]) / "recordings" / rid / "results" / "s7_export_csv"
    out.mkdir(parents=True)
    (out / "supports.csv").write_text("ID,Mounting Height,Longitude,Latitude\nSUP-1,6.0,-77.1,38.2\n")
    (out / "signs.csv").write_text(
        "ID,Foreign Key,MUTCD Code,Position on the Support,Height (in),Width (in)\n"
    )


def test_api_lists_newest_first_with_counts_and_pages(app, client):
    for i in range(7):
        add(f"REC_{i}", "completed" if i % 2 else "queued", minutes_ago=i)
    body = client.get("/api/recordings?per_page=3").get_json()
    assert [r["recording_id"] for r in body["recordings"]] == ["REC_0", "REC_1", "REC_2"]
    assert (body["total"], body["pages"]) == (7, 3)
    assert body["counts"] == {"queued": 4, "processing": 0, "completed": 3, "failed": 0, "cancelled": 0}
    page3 = client.get("/api/recordings?per_page=3&page=3").get_json()
    assert [r["recording_id"] for r in page3["recordings"]] == ["REC_6"]
    done = client.get("/api/recordings?status=completed").get_json()
    assert {r["recording_id"] for r in done["recordings"]} == {"REC_1", "REC_3", "REC_5"}


def test_status_counts_are_reused_for_their_max_age_only(app, client, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(catalog, "status_counts", catalog.CountsCache(clock=lambda: now[0]))
    app.config["STATUS_COUNTS_MAX_AGE"] = 2
    add("REC_1", "completed")
    assert client.get("/api/recordings").get_json()["counts"]["completed"] == 1
    add("REC_2", "completed")
    now[0] += 1.5  # within the max age: the count is reused, the rows are not
    body = client.get("/api/recordings").get_json()
    assert body["counts"]["completed"] == 1 and len(body["recordings"]) == 2
    now[0] += 1
    assert client.get("/api/recordings").get_json()["counts"]["completed"] == 2
    app.config["STATUS_COUNTS_MAX_AGE"] = 0
    add("REC_3", "failed")
    assert client.get("/api/recordings").get_json()["counts"]["failed"] == 1


def test_api_detail_shows_stages_and_404s_unknown(app, client):
    add("REC_A", "processing", stage="s2_tracking", stage_index=3)
    body = client.get("/api/recordings/REC_A").get_json()
    assert (body["status"], body["stage"], body["stage_index"], body["stage_count"]) == (
        "processing",
        "s2_tracking",
        3,
        8,
    )
    assert [s["name"] for s in body["stages"]][0] == "s0_detection"
    assert {"created_at", "updated_at", "started_at", "finished_at", "error"} <= body.keys()
    assert body["attempts"] == []  # none yet: the join's empty side is not an attempt
    missing = client.get("/api/recordings/NOPE")
    assert missing.status_code == 404 and "error" in missing.get_json()


def test_download_gives_a_zip_with_both_csvs(app, client):
    add("REC_D", "completed", results_attempt=1)
    write_results(app, "REC_D")
    response = client.get("/download/REC_D")
    assert response.status_code == 200
    assert 'filename="REC_D_results.zip"' in response.headers["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(response.data)).namelist()
    assert sorted(names) == ["signs.csv", "supports.csv"]


@pytest.mark.parametrize("rid", ["REC_Q", "UNKNOWN", "..", "a b"])
def test_download_is_404_for_unfinished_unknown_or_bad_ids(app, client, rid):
    add("REC_Q", "processing")
    response = client.get(f"/download/{rid}")
    assert response.status_code == 404


def test_status_page_shows_stage_checklist_failure_and_download(app, client):
    add("REC_P", "processing", stage="s2_tracking", stage_index=3)
    add("REC_F", "failed", error="The pipeline failed in stage s4_classification (exit code 3)")
    add("REC_C", "completed", results_attempt=1)
    html = client.get("/status").get_data(as_text=True)
    assert "s2_tracking (3/8)" in html
    assert "exit code 3" in html
    assert "/download/REC_C" in html and "/download/REC_P" not in html
    assert "Download results" in html
    partial = client.get("/status?partial=1").get_data(as_text=True)
    assert "<html" not in partial and "REC_P" in partial


def test_pages_load_no_external_assets(client):
    for path in ("/", "/status"):
        html = client.get(path).get_data(as_text=True)
        assert "http://" not in html and "https://" not in html and "//cdn" not in html


def test_html_clients_get_a_readable_error_page(client):
    response = client.get("/download/UNKNOWN", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert "<h1>Error 404</h1>" in response.get_data(as_text=True)


def test_api_sorts_and_searches_by_id_prefix(client):
    for i, rid in enumerate(["B_2", "A_1", "C_3", "A_10", "A%X"]):
        add(rid, "failed" if rid.startswith("C") else "completed", minutes_ago=i)
    ids = lambda body: [r["recording_id"] for r in body["recordings"]]  # noqa: E731
    assert ids(client.get("/api/recordings?sort=id").get_json()) == ["A%X", "A_1", "A_10", "B_2", "C_3"]
    assert ids(client.get("/api/recordings?sort=oldest").get_json())[0] == "A%X"
    assert ids(client.get("/api/recordings?sort=status").get_json())[-1] == "C_3"
    found = client.get("/api/recordings?q=A_1&sort=id").get_json()
    assert ids(found) == ["A_1", "A_10"] and found["total"] == 2
    assert ids(client.get("/api/recordings?q=A%25").get_json()) == ["A%X"]  # % is literal
    assert client.get("/api/recordings?sort=nonsense").status_code == 200


def test_status_page_keeps_filter_sort_and_search_across_pages_and_shows_running_first(client):
    for i in range(5):
        add(f"REC_{i}", "completed", minutes_ago=i)
    add("RUNNING_ONE", "processing", stage="s2_tracking", stage_index=3)
    html = client.get("/status?per_page=2&sort=id&q=REC").get_data(as_text=True)
    assert "page 1 of 3" in html and "sort=id" in html and "q=REC" in html
    assert "Running now" in html and "RUNNING_ONE" in html
