"""Running a call at a lower CPU priority on a thread of its own."""

from __future__ import annotations

import threading

import pytest

from workers.low_priority import run_at_lower_priority, thread_niceness


def test_the_call_runs_nicer_and_the_caller_keeps_its_priority() -> None:
    base = thread_niceness()
    caller = threading.get_ident()

    def probe(extra: int) -> tuple[int, bool]:
        return thread_niceness() + extra, threading.get_ident() == caller

    niceness, same_thread = run_at_lower_priority(5, probe, 0)
    assert niceness == min(19, base + 5)
    assert same_thread is False
    assert thread_niceness() == base
    # Capped at the lowest priority there is.
    assert run_at_lower_priority(40, probe, extra=0)[0] == 19


def test_zero_runs_in_the_callers_thread() -> None:
    base = thread_niceness()
    assert run_at_lower_priority(0, lambda: (thread_niceness(), threading.get_ident())) == (
        base,
        threading.get_ident(),
    )


def test_the_calls_exception_reaches_the_caller() -> None:
    def fail() -> None:
        raise KeyError("missing location")

    base = thread_niceness()
    with pytest.raises(KeyError, match="missing location"):
        run_at_lower_priority(3, fail)
    assert thread_niceness() == base
