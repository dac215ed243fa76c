"""What the API sends to an OpenAI-compatible LLM server, read off the wire."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.llm import make_llm


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Recorder.bodies.append(body)
        reply = json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "ok"},
                     "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


def test_the_answer_length_cap_is_sent_as_max_tokens(settings) -> None:
    """llama.cpp's server (the CPU model) reads max_tokens and ignores
    max_completion_tokens: without the cap it writes until its context is full."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings.llm_base_url = f"http://127.0.0.1:{server.server_port}/v1"
        settings.fallback_llm_base_url = ""
        settings.max_tokens = 123
        make_llm(settings).invoke("hello")
    finally:
        server.shutdown()
    body = _Recorder.bodies[-1]
    assert body["max_tokens"] == 123
    assert "max_completion_tokens" not in body
