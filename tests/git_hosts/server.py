"""A real git smart-HTTP server for tests: ``git http-backend`` (CGI) behind a small
threaded Python HTTP server with basic auth, optionally with a fake host REST API under
a path prefix (GitHub Enterprise Server's /api/v3, GitLab's /api/v4) on the same origin,
as the real hosts serve them.

Every request is recorded (method, path, Authorization header) so tests can check what
the portal sent, and what it must never send."""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ApiHandler = Callable[[str, str, dict[str, str], Any], tuple[int, Any]]


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str
    body: Any = None


@dataclass
class GitHttpServer:
    root: Path
    users: dict[str, str]  # user -> password (token)
    api_prefix: str = ""
    api: ApiHandler | None = None
    requests: list[Recorded] = field(default_factory=list)

    def start(self) -> GitHttpServer:
        self.root.mkdir(parents=True, exist_ok=True)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().strip().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _user(self) -> str | None:
                auth = self.headers.get("Authorization", "")
                if auth.startswith("Basic "):
                    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                    if server.users.get(user) == password:
                        return user
                return None

            def _handle(self) -> None:
                body = self._body()
                path, _, query = self.path.partition("?")
                recorded = Recorded(self.command, path, self.headers.get("Authorization", ""))
                server.requests.append(recorded)
                if server.api and path.startswith(server.api_prefix + "/"):
                    payload = json.loads(body) if body else None
                    recorded.body = payload
                    status, answer = server.api(
                        self.command,
                        path[len(server.api_prefix) :],
                        {k.lower(): v for k, v in self.headers.items()},
                        payload,
                    )
                    data = json.dumps(answer).encode() if answer is not None else b""
                    self._send(status, data, {"Content-Type": "application/json"})
                    return
                user = self._user()
                if user is None:
                    self._send(
                        401,
                        b"authentication required\n",
                        {"WWW-Authenticate": 'Basic realm="git"', "Content-Type": "text/plain"},
                    )
                    return
                self._cgi(path, query, body, user)

            def _cgi(self, path: str, query: str, body: bytes, user: str) -> None:
                env = {
                    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "GIT_PROJECT_ROOT": str(server.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "REMOTE_USER": user,  # enables receive-pack (push)
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "GIT_CONFIG_NOSYSTEM": "1",
                }
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                result = subprocess.run(
                    ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=120
                )
                head, _, payload = result.stdout.partition(b"\r\n\r\n")
                status, headers = 200, {}
                for line in head.decode().split("\r\n"):
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers[key] = value.strip()
                self._send(status, payload, headers)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def create_bare(self, path: str) -> Path:
        """An empty repository at ``<root>/<path>`` (``team/svc.git``)."""
        bare = self.root / path
        bare.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
        return bare
