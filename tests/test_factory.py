import pytest
from flask import request

from signpipe import create_app


def test_test_config_overrides_and_data_layout_is_created(tmp_path):
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "d"), "MAX_UPLOAD_BYTES": 1000})
    assert app.testing
    assert app.config["MAX_EXTRACT_BYTES"] == 1250
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path / 'd' / 'signpipe.db'}"
    for sub in ("uploads", "temp_extracts", "recordings"):
        assert (tmp_path / "d" / sub).is_dir()
    assert app.config["PIPELINE_COMMAND"].startswith("/")


def test_production_refuses_to_start_without_a_secret(tmp_path):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app({"ENV": "production", "SECRET_KEY": None, "DATA_DIR": str(tmp_path)})


def test_forwarded_headers_are_trusted_only_when_configured(tmp_path):
    def seen_scheme(count: int) -> str:
        app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path), "TRUSTED_PROXY_COUNT": count})
        app.add_url_rule("/scheme", "scheme", lambda: request.url)
        return app.test_client().get("/scheme", headers={"X-Forwarded-Proto": "https"}).get_data(as_text=True)

    assert seen_scheme(0).startswith("http://")
    assert seen_scheme(1).startswith("https://")
