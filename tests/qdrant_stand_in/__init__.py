"""A Qdrant server stand-in on 127.0.0.1 for tests and benchmarks.

No Qdrant server binary can be installed on the development and CI machines, so the
generated RAG service's server mode (`QDRANT_URL`, qdrant-client over REST, as in the
cluster) runs against this: Qdrant's own engine from PyPI `qdrant-edge-py` (segments,
payload indexes, HNSW, int8 scalar quantization) behind the REST endpoints that
qdrant-client and langchain-qdrant call. It runs in its own process, like the server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_qdrant(
    storage: Path | None = None, *, api_key: str = "", startup_s: float = 60
) -> Iterator[str]:
    """Starts the stand-in in a subprocess; yields its URL (`http://127.0.0.1:<port>`)."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="qdrant-stand-in-") as scratch:
        folder = storage or Path(scratch) / "storage"
        log = Path(scratch) / "server.log"
        command = [sys.executable, "-m", "tests.qdrant_stand_in", "--port", str(port)]
        command += ["--storage", str(folder)] + (["--api-key", api_key] if api_key else [])
        with log.open("w") as out:
            process = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_s
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"Qdrant stand-in exited:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Qdrant stand-in not up:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
            yield url
        finally:
            stop_process_group(process)


__all__ = ["running_qdrant"]
