"""`python -m tests.qdrant_stand_in --port 6333 --storage DIR [--api-key KEY]`."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import uvicorn

from tests.qdrant_stand_in.server import create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6333)
    parser.add_argument("--storage", type=Path, help="folder for the collections (default: temp)")
    parser.add_argument("--api-key", default="", help="require this key (header `api-key`)")
    args = parser.parse_args()
    storage = args.storage or Path(tempfile.mkdtemp(prefix="qdrant-stand-in-"))
    storage.mkdir(parents=True, exist_ok=True)
    app = create_app(storage, api_key=args.api_key)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
