"""Runs the services as child processes for `baton up`: start, wait until ready, watch, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from baton.broker import EmbeddedBroker
from baton.orphans import die_with_parent

PID_FILE = "baton-up.pids"


@dataclass
class Child:
    service: str
    port: int
    log_file: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Supervisor:
    """The services (`python -m baton serve <name>`) and the embedded broker, if one was started.

    Logs go to `<data_dir>/logs/<service>.log`; the PIDs of everything started are kept in
    `<data_dir>/baton-up.pids` while it runs.
    """

    def __init__(
        self, data_dir: Path, env: dict[str, str], broker: EmbeddedBroker | None = None
    ) -> None:
        self.log_dir = data_dir / "logs"
        self._pid_file = data_dir / PID_FILE
        self._env = env
        self._broker = broker
        self.children: list[Child] = []

    def start(self, ports: dict[str, int]) -> None:
        """Start one process per service, each in a session of its own."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for service, port in ports.items():
            log_file = self.log_dir / f"{service}.log"
            with open(log_file, "ab") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "baton", "serve", service, "--port", str(port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self._env,
                    start_new_session=True,  # Ctrl-C reaches us only: we stop children in order
                    preexec_fn=die_with_parent(),  # and a killed supervisor leaves no orphans
                )
            self.children.append(Child(service, port, log_file, process))
        self._write_pid_file()

    def _write_pid_file(self) -> None:
        lines = [f"{child.service} {child.process.pid}\n" for child in self.children]
        if self._broker is not None and self._broker.pid is not None:
            lines.append(f"broker {self._broker.pid}\n")
        self._pid_file.write_text("".join(lines))

    def exited(self) -> list[Child]:
        return [c for c in self.children if c.process.poll() is not None]

    def wait_ready(
        self, timeout: float, on_progress: Callable[[int, int], None] | None = None
    ) -> list[Child]:
        """Poll every child's /readyz until all answer 200; return those not ready in time.

        Stops early, returning the child, when one exits.
        """
        deadline = time.monotonic() + timeout
        pending = list(self.children)
        with httpx.Client(timeout=2.0) as client:
            while pending and time.monotonic() < deadline:
                for child in list(pending):
                    if child.process.poll() is not None:
                        return [child]
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{child.url}/readyz").status_code == 200:
                            pending.remove(child)
                if on_progress is not None:
                    on_progress(len(self.children) - len(pending), len(self.children))
                if pending:
                    time.sleep(0.25)
        return pending

    def watch(self, interval: float = 0.5) -> list[Child]:
        """Block until a child exits; return the children that have exited."""
        while not (dead := self.exited()):
            time.sleep(interval)
        return dead

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every service (they flush relays, drain consumers), SIGKILL stragglers, then
        stop the broker."""
        for child in self.children:
            if child.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        if self._broker is not None:
            self._broker.stop()
        self._pid_file.unlink(missing_ok=True)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ("" if there is none)."""
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
