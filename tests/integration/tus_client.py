"""A tus client run as its own process (so a test can kill it): tuspy, chunked, sha1 per chunk.

    python tus_client.py <files_url> <archive> <url_store.json> [seconds_between_chunks]

Prints `start <offset>` once it knows where it resumes from, `offset <n>` after each chunk and
`done <upload_url>` at the end. The upload URL is kept in the store file, so a rerun resumes.
"""

import sys
import time
from pathlib import Path

from tusclient import client
from tusclient.storage.filestorage import FileStorage

CHUNK = 256 * 1024


def main() -> None:
    files_url, archive, store, *pause = sys.argv[1:]
    uploader = client.TusClient(files_url).uploader(
        archive,
        chunk_size=CHUNK,
        metadata={"filename": Path(archive).name},
        store_url=True,
        url_storage=FileStorage(store),
        upload_checksum=True,
    )
    print("start", uploader.offset, flush=True)
    while uploader.offset < uploader.get_file_size():
        uploader.upload_chunk()
        print("offset", uploader.offset, flush=True)
        time.sleep(float(pause[0]) if pause else 0)
    print("done", uploader.url, flush=True)


if __name__ == "__main__":
    main()
