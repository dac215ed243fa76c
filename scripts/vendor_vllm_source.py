"""Fetch the vLLM source files the serving tests read, verbatim, from vLLM's PyPI sdist.

vLLM cannot be installed here (CUDA wheels, no GPU), yet the generated vLLM arguments
must match what the pinned vLLM accepts. The tests read vLLM's own argument
definitions from these files (tests/deploy_bundle/vllm_source.py) instead of a
hand-typed list. This script fetches the sdist through PyPI's simple index (PEP 691
JSON, the API pip uses), checks the archive's sha256 against the index and extracts the
files unchanged into build/vllm-source/vllm-<version>/ (not part of the repository:
vLLM's code is not ours to commit). The repository keeps only the manifest,
tests/fixtures/vllm-<version>.manifest.json (the sdist's and every file's sha256): a
fetch whose files differ from it fails, and the tests re-hash the files.

    .venv/bin/python scripts/vendor_vllm_source.py            # the pinned version
    .venv/bin/python scripts/vendor_vllm_source.py 0.10.2 --record   # when the pin moves

scripts/setup.d/25-vllm-source.sh runs it when the files are missing.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VERSION = "0.10.1.1"
INDEX = "https://pypi.org/simple/vllm/"
# What the tests read: argument parser, config classes, quantization methods, the loader
# rule for pre-quantized checkpoints, and the license the files are under.
FILES = (
    "LICENSE",
    "vllm/engine/arg_utils.py",
    "vllm/entrypoints/openai/cli_args.py",
    "vllm/config/__init__.py",
    "vllm/config/cache.py",
    "vllm/config/parallel.py",
    "vllm/model_executor/layers/quantization/__init__.py",
    "vllm/model_executor/layers/quantization/fp8.py",
    "vllm/model_executor/layers/quantization/awq.py",
    "vllm/model_executor/layers/quantization/awq_marlin.py",
    "vllm/model_executor/layers/quantization/gptq.py",
    "vllm/model_executor/layers/quantization/gptq_marlin.py",
    "vllm/model_executor/layers/quantization/utils/marlin_utils.py",
    "vllm/model_executor/model_loader/weight_utils.py",
)


def destination(version: str) -> Path:
    return ROOT / "build" / "vllm-source" / f"vllm-{version}"


def manifest_path(version: str) -> Path:
    return ROOT / "tests" / "fixtures" / f"vllm-{version}.manifest.json"


def sdist_entry(client: httpx.Client, version: str) -> dict:
    response = client.get(INDEX, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    response.raise_for_status()
    wanted = f"vllm-{version}.tar.gz"
    for entry in response.json()["files"]:
        if entry["filename"] == wanted:
            return entry
    raise SystemExit(f"{wanted} is not on PyPI")


def main(version: str, record: bool = False) -> int:
    with httpx.Client(timeout=300, follow_redirects=True) as client:
        entry = sdist_entry(client, version)
        archive = client.get(entry["url"])
        archive.raise_for_status()
    digest = hashlib.sha256(archive.content).hexdigest()
    if digest != entry["hashes"]["sha256"]:
        raise SystemExit(f"sha256 mismatch: got {digest}, PyPI says {entry['hashes']['sha256']}")
    out = destination(version)
    if out.exists():
        shutil.rmtree(out)
    prefix = f"vllm-{version}/"
    hashes = {}
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        for name in FILES:
            member = tar.extractfile(prefix + name)
            if member is None:
                raise SystemExit(f"{name} is not in {entry['filename']}")
            data = member.read()
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            hashes[name] = hashlib.sha256(data).hexdigest()
    manifest = {
        "package": "vllm",
        "version": version,
        "sdist": entry["filename"],
        "sdist_sha256": digest,
        "url": entry["url"],
        "files": hashes,
    }
    recorded = manifest_path(version)
    if record:
        recorded.write_text(json.dumps(manifest, indent=2) + "\n")
    elif not recorded.exists():
        raise SystemExit(f"{recorded.relative_to(ROOT)} is missing: run with --record")
    elif json.loads(recorded.read_text())["files"] != hashes:
        shutil.rmtree(out)
        raise SystemExit(f"the files of {entry['filename']} differ from {recorded.name}")
    print(f"{len(hashes)} files of {entry['filename']} ({digest}) in {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if a != "--record"]
    raise SystemExit(
        main(arguments[0] if arguments else DEFAULT_VERSION, record="--record" in sys.argv)
    )
