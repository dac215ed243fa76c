"""A pytest plugin: wall time per suite (tests/<suite>/...) at the end of the run.

CI prints it so the slow suites (local runtime, browser, real models) stay visible and
the whole run stays inside its budget."""

from __future__ import annotations

from collections import defaultdict

import pytest

_times: dict[str, float] = defaultdict(float)
_counts: dict[str, int] = defaultdict(int)


def _suite(nodeid: str) -> str:
    parts = nodeid.split("::", 1)[0].split("/")
    if len(parts) > 2 and parts[1] == "provisioning" and parts[2] == "local":
        return "provisioning/local"
    return parts[1] if len(parts) > 2 else parts[-1]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _times[_suite(report.nodeid)] += report.duration
    if report.when == "call":
        _counts[_suite(report.nodeid)] += 1


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not _times:
        return
    terminalreporter.write_sep("=", "time per suite (setup + call + teardown)")
    for suite, seconds in sorted(_times.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f} s  {_counts[suite]:4d} tests  {suite}")
    terminalreporter.write_line(f"{sum(_times.values()):8.1f} s  total")
