"""`make test` on a machine without Chromium: the browser tests are skipped there, saying how to
install it, and fail in CI (CI=true), where the docs must not go untested."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BROWSER_TEST = "tests/test_docs_browser.py::test_the_console_of_the_browser_is_read"


def run_browser_test(ci: str | None) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if key != "CI"}
    environ["CHROMIUM"] = "no-such-chromium-binary"
    if ci is not None:
        environ["CI"] = ci
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", BROWSER_TEST]
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("ci", [None, ""])
def test_without_chromium_outside_ci_the_browser_tests_are_skipped_saying_how_to_install_it(ci):
    result = run_browser_test(ci)

    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout and "apt-get install -y chromium" in result.stdout


def test_without_chromium_in_ci_the_browser_tests_fail():
    result = run_browser_test("true")

    assert result.returncode == 1, result.stdout
    assert "1 failed" in result.stdout and "is not installed" in result.stdout
