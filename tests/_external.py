"""Tests that need something outside Python (a PostgreSQL server, chromium): skip locally, fail in CI.

On a developer's machine a missing chromium or PostgreSQL skips the tests that need it. In CI
(``GENAUG_CI=1``, set by ``.ci/run``) the same absence is a failure, so a test that needs them
is never skipped there unnoticed:

* ``require_or_skip(what, reason)`` -- call it where the missing thing is detected;
* ``pytest_runtest_makereport`` / ``pytest_make_collect_report`` (hook wrappers, imported into
  ``tests/conftest.py``) -- the safety net: in CI they turn any skip whose reason names one
  of ``EXTERNAL_REQUIREMENTS`` into a failure, whoever wrote the ``pytest.skip``.
"""
from __future__ import annotations

import os
import re
from typing import NoReturn

import pytest

# Skip reasons that name one of these fail the run in CI (case-insensitive).
EXTERNAL_REQUIREMENTS = ("chromium", "postgresql", "postgres", "playwright")
_EXTERNAL_PATTERN = re.compile("|".join(EXTERNAL_REQUIREMENTS), re.IGNORECASE)


def in_ci() -> bool:
    """Whether this run is CI's (``GENAUG_CI=1``): there nothing a test needs may be missing."""
    return os.environ.get("GENAUG_CI", "").strip().lower() in ("1", "true", "yes")


def require_or_skip(what: str, reason: str) -> NoReturn:
    """``what`` (say ``"chromium"``) is missing because of ``reason``: fail in CI, skip elsewhere.

    Call it from a test or a fixture at the point where the absence is found::

        if shutil.which("chromium") is None:
            require_or_skip("chromium", "no chromium executable on PATH (apt-get install chromium)")
    """
    message = f"{what} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message} (GENAUG_CI=1: CI must provide {what}, so this is a failure, not a skip)",
                    pytrace=False)
    pytest.skip(message)


def names_external_requirement(reason: str) -> bool:
    """Whether a skip reason names something CI must provide (see ``EXTERNAL_REQUIREMENTS``)."""
    return bool(_EXTERNAL_PATTERN.search(reason or ""))


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, lineno, "Skipped: reason")
        return str(longrepr[2])
    return str(longrepr)


def _fail_external_skip(report, when: str) -> None:
    """In CI, turn ``report`` (a skip naming an external requirement) into a failure, in place."""
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if names_external_requirement(reason):
        report.outcome = "failed"
        report.longrepr = (f"GENAUG_CI=1: a test needing an external requirement was skipped during "
                           f"{when}; CI must provide it.\n{reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail_external_skip(report, report.when)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    # Module-level skips (pytest.skip(..., allow_module_level=True), importorskip) happen here.
    report = yield
    _fail_external_skip(report, "collection")
    return report
