"""Memory at rest: each service's resident memory after start-up, against a bare uvicorn + FastAPI
process started the same way in the same run. Target: each department service <= 150 MiB.

    .venv/bin/python -m bench.memory
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import httpx

from baton.broker import free_port
from bench.fleet import fleet, rss_mb

TARGET_MB = 150.0
SETTLE_S = 5.0
BARE_APP = """
import fastapi, uvicorn
app = fastapi.FastAPI()
@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            log_level="warning")
"""


def bare_rss() -> float:
    """RSS of a bare uvicorn + FastAPI process once it answers and has settled."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", "import sys\n" + BARE_APP, str(port)])
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(SETTLE_S)
        return rss_mb(process.pid)
    finally:
        process.terminate()
        process.wait()


def main(rounds: int = 3) -> None:
    baseline = statistics.median(bare_rss() for _ in range(rounds))
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        with fleet() as supervisor:
            time.sleep(SETTLE_S)
            for child in supervisor.children:
                samples.setdefault(child.service, []).append(rss_mb(child.process.pid))
    print(f"bare uvicorn + FastAPI: {baseline:.1f} MiB (median of {rounds})")
    print(f"{'service':<18}{'RSS MiB':>9}{'x bare':>8}  target")
    for service, values in samples.items():
        rss = statistics.median(values)
        target = "-" if service == "kpi" else ("ok" if rss <= TARGET_MB else "MISSED")
        print(f"{service:<18}{rss:>9.1f}{rss / baseline:>8.2f}  <= {TARGET_MB:.0f} MiB: {target}")


if __name__ == "__main__":
    main()
