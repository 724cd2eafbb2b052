"""``masksdm app`` serves without asking anything and only on this machine by default: started as a
service would start it (no ``--headless``, standard input closed, no browser to open), its health
endpoint answers on 127.0.0.1 within a minute, and nothing answers on the machine's other
addresses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("streamlit")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _other_address() -> str | None:
    """An address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent, the route picks the address
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _health(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return answer.read() == b"ok"
    except OSError:
        return False


def test_app_answers_on_loopback_with_stdin_closed_and_no_prompt(tiny_workspace, tiny_run):
    port = _free_port()
    env = {**os.environ, "BROWSER": "true"}  # webbrowser runs `true`: nothing opens, nothing waits
    process = subprocess.Popen(
        [sys.executable, "-m", "masksdm", "app", "--workspace", str(tiny_workspace.path), "--run", tiny_run.name,
         "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not _health(f"http://127.0.0.1:{port}"):
            assert process.poll() is None, process.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the dashboard did not answer within a minute"
            time.sleep(0.5)
        other = _other_address()
        if other is not None:
            assert not _health(f"http://{other}:{port}"), "the dashboard listens beyond this machine by default"
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=20)
    text = out.decode()
    assert "Email" not in text and "email" not in text
    assert f"http://localhost:{port}" in text
