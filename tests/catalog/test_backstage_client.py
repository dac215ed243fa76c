"""Backstage's own npm client (@backstage/catalog-client) against the live catalog."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.catalog.conftest import YamlServer
from tests.catalog.factories import component, group
from tests.conftest import BOOTSTRAP_TOKEN, LiveServer

CLIENT_DIR = Path(__file__).resolve().parents[1] / "backstage_client"


@pytest.mark.usefixtures("allow_private_urls")
def test_backstage_catalog_client_works_unchanged(
    live_server: LiveServer, yaml_server: YamlServer
) -> None:
    node = shutil.which("node")
    assert node, "Node.js is required (the test machine has Node 20)"
    assert (CLIENT_DIR / "node_modules/@backstage/catalog-client").is_dir(), (
        "run scripts/setup.d/10-backstage-client.sh (npm ci) first"
    )
    url = yaml_server.publish(
        "catalog-info.yaml",
        component("web"),
        component("worker", type="batch"),
        group("team-a"),
    )
    url_v2 = yaml_server.publish(
        "catalog-info-v2.yaml",
        component("web", description="v2"),
        component("worker", type="batch"),
        group("team-a"),
    )
    result = subprocess.run(
        [node, str(CLIENT_DIR / "check.mjs"), live_server.url, BOOTSTRAP_TOKEN],
        env={**os.environ, "CATALOG_LOCATION_URL": url, "CATALOG_LOCATION_URL_V2": url_v2},
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["ok"] is True
    assert len(report["steps"]) == 22
