"""Test data: valid recording trees (with a small real MP4) and archives of them."""

from __future__ import annotations

import io
import math
import random
import struct
import tarfile
import zipfile
from pathlib import Path

DEVICE = "device-7f3a"
# What the service promises: the result CSVs' headers and the fields of a progress record.
SUPPORT_HEADER = ["ID", "Mounting Height", "Longitude", "Latitude"]
SIGN_HEADER = ["ID", "Foreign Key", "MUTCD Code", "Position on the Support", "Height (in)", "Width (in)"]
PROGRESS_FIELDS = {
    "status",
    "total_files",
    "extracted_files",
    "extract_size",
    "recording_id",
    "error_msg",
    "error_details",
}
IMEI = "356938035643809"


def mp4_bytes(payload: int = 4096) -> bytes:
    """A minimal ISO-BMFF file: ftyp, a moov with mvhd, and an mdat of `payload` incompressible bytes
    (like real video, which a compression-ratio guard must not mistake for a bomb)."""
    ftyp = b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41"
    mvhd = struct.pack(">B3xIIII", 0, 0, 0, 1000, 0) + struct.pack(">I", 0x00010000) + b"\x01\x00" + bytes(70)
    mvhd += struct.pack(">I", 2)

    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    return (
        box(b"ftyp", ftyp)
        + box(b"moov", box(b"mvhd", mvhd))
        + box(b"mdat", random.Random(payload).randbytes(payload))
    )


def track_rows(rid: str, points: int = 60) -> list[tuple[float, float]]:
    """A GPS track that depends on the recording id, so two recordings differ."""
    seed = sum(rid.encode()) % 97
    lat0, lon0 = 38.0 + seed / 100, -77.0 - seed / 100
    return [(lat0 + i * 0.0002, lon0 + math.sin(i / 7) * 0.0003 + i * 0.0001) for i in range(points)]


def recording_files(rid: str, mp4_size: int = 4096, lat_col: str = "latitude", lon_col: str = "longitude"):
    """Relative path -> bytes for every file of a valid recording."""
    track = track_rows(rid)
    loc = f"timestamp,{lat_col},{lon_col},speed\n" + "".join(
        f"{1700000000 + i},{lat:.7f},{lon:.7f},12.5\n" for i, (lat, lon) in enumerate(track)
    )
    acc = "timestamp,x,y,z\n" + "".join(f"{1700000000 + i},0.01,0.02,9.81\n" for i in range(50))
    base = f"{rid}/{DEVICE}/{IMEI}"
    return {
        f"{base}/acceleration/{rid}_acc.csv": acc.encode(),
        f"{base}/calibration/front_calibration.csv": b"key,value\nfocal,1200\n",
        f"{base}/camera/{rid}_cam_{rid}.mp4": mp4_bytes(mp4_size),
        f"{base}/camera/camera_params.csv": b"fx,fy,cx,cy\n1200,1200,960,540\n",
        f"{base}/location/{rid}_loc.csv": loc.encode(),
        f"{base}/location/{rid}_loc_cleaned.csv": loc.encode(),
        f"{base}/processed/{rid}_processed_acc.csv": acc.encode(),
        f"{base}/processed/{rid}_processed_loc.csv": loc.encode(),
    }


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def make_zip(path: Path, files: dict[str, bytes], dirs: bool = True, extra: dict | None = None) -> Path:
    """ZIP with (optionally) directory entries, deflated CSVs and a stored MP4."""
    with zipfile.ZipFile(path, "w") as zf:
        if dirs:
            for folder in sorted({str(Path(rel).parent) for rel in files}):
                zf.writestr(folder + "/", b"")
        for rel, data in {**files, **(extra or {})}.items():
            method = zipfile.ZIP_STORED if rel.endswith(".mp4") else zipfile.ZIP_DEFLATED
            zf.writestr(rel, data, compress_type=method)
    return path


def make_tar(path: Path, files: dict[str, bytes], compress: bool = True, fmt=tarfile.PAX_FORMAT) -> Path:
    with tarfile.open(path, "w:gz" if compress else "w", format=fmt) as tf:
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def without(files: dict[str, bytes], *fragments: str) -> dict[str, bytes]:
    """The same recording minus every file whose path contains one of the fragments."""
    return {rel: data for rel, data in files.items() if not any(f in rel for f in fragments)}


def make_zip_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in files.items():
            zf.writestr(rel, data)
    return buffer.getvalue()


def make_tar_bytes(files: dict[str, bytes], compress: bool = True) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as tf:
        for rel, data in files.items():
            info = tarfile.TarInfo(rel)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
