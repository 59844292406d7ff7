"""Invariant checks that apps register and `manage.py check_invariants` runs (in tests and in production).

A check is a function returning a list of human-readable violations; empty means all is well.
"""

from collections.abc import Callable

_checks: dict[str, Callable[[], list[str]]] = {}


def register(name: str, check: Callable[[], list[str]]) -> None:
    _checks[name] = check


def run_all() -> dict[str, list[str]]:
    return {name: check() for name, check in sorted(_checks.items())}
