"""Catalog test helpers: a local YAML file server and private-URL opt-in."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import LiveServer


@dataclass
class YamlServer:
    root: Path
    url: str

    def publish(self, name: str, *documents: dict | str) -> str:
        """Write documents (dicts dumped as YAML, strings verbatim) and return their URL."""
        parts = [d if isinstance(d, str) else yaml.safe_dump(d, sort_keys=False) for d in documents]
        (self.root / name).write_text("---\n".join(parts))
        return f"{self.url}/{name}"


@pytest.fixture
def yaml_server(tmp_path: Path) -> Iterator[YamlServer]:
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield YamlServer(root, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


@pytest.fixture
def allow_private_urls(live_server: LiveServer) -> Iterator[None]:
    """Lets the live portal fetch from 127.0.0.1 (the YAML server) for one test."""
    settings = live_server.settings
    previous = settings.allow_private_urls
    settings.allow_private_urls = True
    yield
    settings.allow_private_urls = previous
