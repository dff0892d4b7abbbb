"""`baton up` as a new user runs it: five services, an event across, Ctrl-C, nothing left."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from baton.broker import free_ports
from shared.settings import SERVICES


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited: it only waits for its parent to read its status
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def _wait_ready(ports: dict[str, int], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    pending = dict(ports)
    with httpx.Client(timeout=2) as client:
        while pending and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            for service, port in list(pending.items()):
                try:
                    if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        del pending[service]
                except httpx.HTTPError:
                    pass
            time.sleep(0.5)
    assert not pending, f"not ready: {pending}\n{log.read_text()}"


def test_baton_up_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    broker_port, *service_ports = free_ports(len(SERVICES) + 1)
    ports = dict(zip(SERVICES, service_ports, strict=True))
    env = {
        **os.environ,
        "BATON_DATA_DIR": str(tmp_path / "var"),
        "BATON_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}",
        "BATON_KAFKA_SESSION_TIMEOUT_MS": "3000",
        "COLUMNS": "200",
        **{f"BATON_{s.upper()}_PORT": str(p) for s, p in ports.items()},
    }
    env.pop("BATON_JWT_SECRET", None)
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "baton", "up", "--no-demo"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_ready(ports, process, log)
        token = subprocess.run(
            [sys.executable, "-m", "baton", "token", "--scope", "admin"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(timeout=10) as client:
            for service, port in ports.items():
                assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                schema = client.get(f"http://127.0.0.1:{port}/openapi.json").json()
                path, operations = next(
                    (p, ops) for p, ops in schema["paths"].items() if p.startswith("/v1/")
                )
                url = f"http://127.0.0.1:{port}" + re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
                method = next(iter(operations)).upper()
                assert client.request(method, url).status_code == 401, (service, path)
            lead = {"email": "e2e@example.jp", "name": "E", "company": "E2E KK", "source": "event"}
            created = client.post(
                f"http://127.0.0.1:{ports['marketing']}/v1/leads", json=lead, headers=headers
            )
            assert created.status_code == 201, created.text
            captured = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not captured:
                response = client.get(
                    f"http://127.0.0.1:{ports['kpi']}/v1/kpis/marketing",
                    params={"granularity": "day"},
                    headers=headers,
                )
                captured = response.json()["total"]["kpis"]["marketing"]["leads_captured"]
                time.sleep(0.2)
            assert captured == 1
        output = log.read_text()
        assert "Baton is up" in output
        assert "admin" in output
        assert re.search(r"dashboard: http://127.0.0.1:\d+/dashboard#token=[\w.-]+", output)
        pids = [
            int(line.split()[1])
            for line in (tmp_path / "var" / "baton-up.pids").read_text().splitlines()
        ]
        assert len(pids) == len(SERVICES) + 1  # and the embedded broker
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=40) == 0, log.read_text()
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [p for p in pids if _alive(p)] == [], "processes left behind"

    finally:
        if process.poll() is None:
            process.kill()  # its children get SIGTERM from the kernel (die with parent)
            process.wait()


def test_a_killed_baton_up_leaves_no_orphans(tmp_path: Path) -> None:
    """Even SIGKILL (no chance to clean up): the children follow their parent."""
    broker_port, *service_ports = free_ports(len(SERVICES) + 1)
    env = {
        **os.environ,
        "BATON_DATA_DIR": str(tmp_path / "var"),
        "BATON_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}",
        **{f"BATON_{s.upper()}_PORT": str(p) for s, p in zip(SERVICES, service_ports, strict=True)},
    }
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "baton", "up", "--no-demo"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    pid_file = tmp_path / "var" / "baton-up.pids"
    deadline = time.monotonic() + 120
    while not pid_file.exists() and time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        time.sleep(0.2)
    pids = [int(line.split()[1]) for line in pid_file.read_text().splitlines()]
    process.kill()
    process.wait()
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [p for p in pids if _alive(p)] == [], "orphans left behind"
