"""The README's walkthrough, run as written: its first block (`make dev`) starts the stack on ports,
a database and a mail log of the test's own, then its other shell blocks run in order in one bash,
and the order they place ends refunded. Also: Ctrl-C stops `make dev` with its localstripe, and
localstripe does not outlive an app that cannot start."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import eventually, free_port
from tests.test_deploy import ROOT

HEADING = "## From sign-up to a refunded order, locally"
STARTS_IN_SECONDS = 60  # make dev: migrate, localstripe, the app (more if make installs first)
WALKTHROUGH_SECONDS = 60
BASH = shutil.which("bash") or "/bin/bash"


def walkthrough() -> tuple[str, str]:
    """`(the command that starts the stack, the commands after it)`, from the README's text: the
    fenced `sh` blocks of its walkthrough section, the first one and the rest."""
    readme = (ROOT / "README.md").read_text()
    if HEADING not in readme:
        pytest.fail(f"README.md has no section {HEADING!r}: the walkthrough this test runs", pytrace=False)
    section = readme.split(HEADING, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    if len(blocks) < 2 or not blocks[0].lstrip().startswith("make dev"):
        pytest.fail(f"README.md's {HEADING!r} must open with a `make dev` sh block, then the commands", pytrace=False)
    return blocks[0], "\n".join(blocks[1:])


@dataclass
class Stack:
    process: subprocess.Popen
    environ: dict[str, str]
    output: Path

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.environ['PORT']}/api/v1"

    @property
    def localstripe_port(self) -> int:
        return int(self.environ["LOCALSTRIPE_PORT"])

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def stack_environ(tmp_path: Path) -> dict[str, str]:
    """What the README's commands run with: free ports, and a database and mail log in `tmp_path`,
    so nothing of the developer's (instance/) is touched."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dev.db'}",
        "PORT": str(free_port()),
        "LOCALSTRIPE_PORT": str(free_port()),
        "DEV_LOG": str(tmp_path / "dev.log"),
    }


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def end_group(process: subprocess.Popen) -> None:
    """Stop what `process` started, its whole process group: Ctrl-C first, then SIGKILL."""
    for sig, seconds in ((signal.SIGINT, 20), (signal.SIGKILL, 10)):
        if group_gone(process.pid):
            break
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=seconds)
            eventually(lambda: group_gone(process.pid), seconds)
        except (subprocess.TimeoutExpired, AssertionError):
            continue
    process.wait(timeout=10)


@contextmanager
def started(command: str, tmp_path: Path, **overrides: str) -> Iterator[Stack]:
    """`command` (the README's `make dev`) running in a process group of its own, stopped after."""
    environ = {**stack_environ(tmp_path), **overrides}
    output = tmp_path / "make-dev.out"
    with output.open("wb") as out:
        process = subprocess.Popen(
            [BASH, "-c", command], cwd=ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield Stack(process, environ, output)
    finally:
        end_group(process)


def wait_until_serving(stack: Stack) -> None:
    deadline = time.monotonic() + STARTS_IN_SECONDS
    while True:
        try:
            with urllib.request.urlopen(f"{stack.api}/health", timeout=2) as answer:
                assert answer.status == 200
                return
        except OSError:
            assert stack.process.poll() is None, f"make dev exited {stack.process.returncode}:\n{stack.log()}"
            assert time.monotonic() < deadline, f"make dev was not serving after {STARTS_IN_SECONDS} s:\n{stack.log()}"
            time.sleep(0.2)


def run_commands(commands: str, environ: dict[str, str]) -> subprocess.CompletedProcess:
    """The commands in one bash, stopped at the first that fails; its group killed if it hangs."""
    process = subprocess.Popen(
        [BASH, "-euo", "pipefail", "-c", commands],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=WALKTHROUGH_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"the walkthrough was still running after {WALKTHROUGH_SECONDS} s:\n{stdout}\n{stderr}")
    finally:
        if not group_gone(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_readme_walkthrough_takes_an_order_from_sign_up_to_refunded(tmp_path):
    start, commands = walkthrough()
    with started(start, tmp_path) as stack:
        wait_until_serving(stack)
        began = time.monotonic()
        result = run_commands(commands, stack.environ)
        seconds = time.monotonic() - began
        print(f"--- the README's walkthrough, {seconds:.1f} s ---\n{result.stdout}--- its stderr ---\n{result.stderr}")

    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n--- make dev ---\n{stack.log()}"
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"order (\d+) is refunded", lines[-1]), lines
    order_id = int(lines[-1].split()[1])
    assert f"order {order_id} is pending_payment" in lines and f"order {order_id} is paid" in lines, lines
    engine = create_engine(stack.environ["DATABASE_URL"])
    with engine.connect() as connection:
        status = connection.execute(text("SELECT status FROM orders WHERE id = :id"), {"id": order_id}).scalar()
    engine.dispose()
    assert status == "refunded"
    assert "Sign-in code for buyer@example.com" in Path(stack.environ["DEV_LOG"]).read_text()  # the mail log


def test_ctrl_c_stops_make_dev_and_its_localstripe(tmp_path):
    start, _ = walkthrough()
    with started(start, tmp_path) as stack:
        wait_until_serving(stack)
        assert not refuses_connections(stack.localstripe_port)

        os.killpg(stack.process.pid, signal.SIGINT)  # what Ctrl-C in its terminal sends

        stack.process.wait(timeout=20)
        eventually(lambda: group_gone(stack.process.pid), 10)
    assert refuses_connections(stack.localstripe_port)


def test_localstripe_does_not_outlive_an_app_that_cannot_start(tmp_path):
    start, _ = walkthrough()
    with (
        socket.create_server(("127.0.0.1", 0)) as taken,
        started(start, tmp_path, PORT=str(taken.getsockname()[1])) as stack,
    ):
        exit_code = stack.process.wait(timeout=STARTS_IN_SECONDS)
        eventually(lambda: group_gone(stack.process.pid), 10)

    assert exit_code != 0
    assert "in use" in stack.log()
    assert refuses_connections(stack.localstripe_port)
