"""The tus 1.0.0 endpoint (`/files/`): create, probe, append to and terminate resumable uploads."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, request, url_for
from werkzeug.http import http_date

from .. import resumable
from ..models import TusUpload
from ..tus import CHECKSUM_ALGORITHMS, EXTENSIONS, OFFSET_CONTENT_TYPE, VERSION, TusError, parse_non_negative

bp = Blueprint("tus", __name__)
PREFIX = "/files"


@bp.after_app_request
def tus_headers(response: Response) -> Response:
    """Every answer under /files carries the protocol version (errors included)."""
    if request.path.startswith(PREFIX):
        response.headers["Tus-Resumable"] = VERSION
        if response.status_code in (201, 204) or request.method == "HEAD":
            response.headers.pop("Content-Type", None)  # these answers have no body
    return response


@bp.before_request
def check_version():
    """A request in another protocol version is refused before anything changes (412)."""
    if request.method == "OPTIONS" or request.endpoint == "tus.upload_job":
        return None
    if request.headers.get("Tus-Resumable") != VERSION:
        response = jsonify(error=f"Tus-Resumable {VERSION} is required")
        response.status_code = 412
        response.headers["Tus-Version"] = VERSION
        return response
    return None


def _upload_headers(upload: TusUpload, offset: int) -> dict[str, str]:
    headers = {"Upload-Offset": str(offset), "Cache-Control": "no-store"}
    if upload.completed_at is None:
        headers["Upload-Expires"] = http_date(upload.expires_at)
    if upload.job_id:
        headers["Upload-Job-Id"] = upload.job_id
    return headers


@bp.route(f"{PREFIX}/", methods=["OPTIONS"])
@bp.route(f"{PREFIX}/<uid>", methods=["OPTIONS"])
def options(uid: str | None = None):
    """What this server supports."""
    response = Response(status=204)
    response.headers.update(
        {
            "Tus-Version": VERSION,
            "Tus-Extension": EXTENSIONS,
            "Tus-Max-Size": str(current_app.config["MAX_UPLOAD_BYTES"]),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
        }
    )
    return response


@bp.post(f"{PREFIX}/")
def create():
    """Creation (and creation-with-upload): 201 with a relative Location."""
    if request.headers.get("Upload-Defer-Length"):
        raise TusError("Upload-Defer-Length is not supported; send Upload-Length", 400)
    length = parse_non_negative("Upload-Length", request.headers.get("Upload-Length"))
    upload = resumable.create_upload(length, request.headers.get("Upload-Metadata"))
    offset = 0
    if request.content_length or request.headers.get("Transfer-Encoding"):
        _require_offset_content_type()
        offset, upload = resumable.write_chunk(
            upload.id, 0, request.stream, request.content_length, request.headers.get("Upload-Checksum")
        )
    response = Response(status=201, headers=_upload_headers(upload, offset))
    response.headers["Location"] = url_for("tus.head", uid=upload.id)
    response.autocorrect_location_header = False
    return response


@bp.route(f"{PREFIX}/<uid>", methods=["HEAD"])
def head(uid: str):
    """The upload's offset, length and metadata as sent; never cached."""
    upload = resumable.get_upload(uid)
    headers = _upload_headers(upload, resumable.current_offset(upload))
    headers["Upload-Length"] = str(upload.length)
    if upload.metadata_header:
        headers["Upload-Metadata"] = upload.metadata_header
    return Response(status=200, headers=headers)


@bp.route(f"{PREFIX}/<uid>", methods=["PATCH"])
def patch(uid: str):
    """Append a chunk at Upload-Offset; 204 with the new offset (and the job id once complete)."""
    _require_offset_content_type()
    offset = parse_non_negative("Upload-Offset", request.headers.get("Upload-Offset"))
    new_offset, upload = resumable.write_chunk(
        uid, offset, request.stream, request.content_length, request.headers.get("Upload-Checksum")
    )
    return Response(status=204, headers=_upload_headers(upload, new_offset))


@bp.route(f"{PREFIX}/<uid>", methods=["DELETE"])
def delete(uid: str):
    """Termination: the bytes are deleted and the upload answers 404 from now on."""
    resumable.terminate(uid)
    return Response(status=204)


@bp.post(f"{PREFIX}/<uid>")
def method_override(uid: str):
    """X-HTTP-Method-Override, for clients behind proxies that only pass GET and POST."""
    handlers = {"PATCH": patch, "DELETE": delete, "HEAD": head}
    method = request.headers.get("X-HTTP-Method-Override", "").upper()
    if method not in handlers:
        abort(405, description="POST to an upload needs X-HTTP-Method-Override: PATCH, DELETE or HEAD")
    return handlers[method](uid)


@bp.get(f"{PREFIX}/<uid>/job")
def upload_job(uid: str):
    """The ingest job a finished upload started; 404 while the upload is unfinished."""
    try:
        upload = resumable.get_upload(uid)
    except TusError as exc:
        abort(exc.status, description=exc.message)
    if not upload.job_id:
        abort(404, description="This upload is not complete yet")
    return jsonify(job_id=upload.job_id, status_url=url_for("uploads.extract_status", job_id=upload.job_id))


def _require_offset_content_type() -> None:
    if request.mimetype != OFFSET_CONTENT_TYPE:
        raise TusError(f"Content-Type must be {OFFSET_CONTENT_TYPE}", 415)
