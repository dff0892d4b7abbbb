"""Runs the services as child processes for `baton up`: start, wait until ready, stop in order."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from baton.orphans import die_with_parent


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
    """Starts each service with `python -m baton serve <name>` and stops them all on exit."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self._log_dir = log_dir
        self._env = env
        self.children: list[Child] = []

    def start(self, service: str, port: int) -> Child:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_file = self._log_dir / f"{service}.log"
        with open(log_file, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "baton", "serve", service, "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,  # Ctrl-C reaches us only: we stop children in order
                preexec_fn=die_with_parent(),  # and a killed supervisor leaves no orphans
            )
        child = Child(service, port, log_file, process)
        self.children.append(child)
        return child

    def exited(self) -> list[Child]:
        return [c for c in self.children if c.process.poll() is not None]

    def wait_ready(self, timeout: float, on_progress: object = None) -> list[Child]:
        """Poll every child's /readyz until all answer 200; return those not ready in time."""
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
                if callable(on_progress):
                    on_progress(len(self.children) - len(pending), len(self.children))
                if pending:
                    time.sleep(0.25)
        return pending

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every child (they flush relays, drain consumers), then SIGKILL stragglers."""
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


def log_tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
