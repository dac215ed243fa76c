"""Screenshots at the desktop and phone sizes, and axe-core's accessibility rules, for a
page the browser tests visit.

axe-core comes from npm (tests/ui/axe, installed by scripts/setup.d/41-axe-core.sh) and
is injected into the page as it is: the same rules browser extensions run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from tests.ui.conftest import ARTIFACTS

AXE = Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
# What a person who cannot see or use a mouse would be blocked by.
BLOCKING = ("serious", "critical")

_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ") + " :: " + (n.failureSummary || "")),
  }));
}"""


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical violations on the page as it is now."""
    if not AXE.exists():
        raise RuntimeError(f"{AXE} missing: run scripts/setup.d/41-axe-core.sh")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(_RUN)
    return [v for v in found if v["impact"] in BLOCKING]


def screenshots(page: Page, name: str) -> list[Path]:
    """Full-page screenshots at 1440x900 and 390x844; the viewport is put back after."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    paths = []
    for label, size in VIEWPORTS.items():
        page.set_viewport_size(size)
        path = ARTIFACTS / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        paths.append(path)
    if before:
        page.set_viewport_size(before)
    return paths


def check_page(page: Page, name: str, problems: dict[str, list[dict[str, Any]]]) -> None:
    """Both screenshots and the accessibility run; violations are collected by page name,
    so one test reports every page's problems at once."""
    screenshots(page, name)
    violations = axe_violations(page)
    if violations:
        problems[name] = violations
