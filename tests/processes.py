"""Processes the tests start and stop themselves: free loopback ports, process groups, PID
namespaces (so that a test's `ray stop` or crash can reach nothing it did not start)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, to a process started with start_new_session=True and everything
    in its group. (`unshare --fork` ignores SIGTERM itself; SIGKILL on it reaches its child
    through --kill-child, and that child being PID 1 of its namespace, every process there
    ends with it.)"""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


def namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def in_pid_namespace(command: list[str]) -> list[str]:
    """``command`` as PID 1 of a new PID namespace: when it ends, so does all it started."""
    return ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", *command]


def wait_for(condition, *, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process ended (rc {proc.returncode}) before {what}: "
                                 f"{proc.stderr.read()[-3000:] if proc.stderr else ''}")
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")
