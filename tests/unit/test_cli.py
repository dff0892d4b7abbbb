"""The CLI's own checks, without a broker."""

from __future__ import annotations

import socket
from pathlib import Path

import jwt
import pytest
from typer.testing import CliRunner

from baton.cli import app

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BATON_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("BATON_JWT_SECRET", raising=False)
    return tmp_path


def test_token_is_signed_with_the_data_dir_secret(data_dir: Path) -> None:
    result = runner.invoke(
        app, ["token", "--scope", "marketing:read", "--scope", "kpi:read", "--subject", "crm"]
    )
    assert result.exit_code == 0, result.output
    secret = (data_dir / "jwt-secret").read_text().strip()
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"], audience="baton")
    assert claims["sub"] == "crm"
    assert claims["scope"] == "marketing:read kpi:read"


def test_unknown_scope_is_refused(data_dir: Path) -> None:
    result = runner.invoke(app, ["token", "--scope", "marketing:delete"])
    assert result.exit_code == 2
    assert "unknown scope" in result.output


def test_unknown_service_is_refused(data_dir: Path) -> None:
    result = runner.invoke(app, ["replay", "sales"])
    assert result.exit_code == 2
    assert "unknown service 'sales'" in result.output
    assert "marketing" in result.output


def test_bad_since_is_refused(data_dir: Path) -> None:
    result = runner.invoke(app, ["replay", "marketing", "--since", "last tuesday"])
    assert result.exit_code == 2
    assert "ISO 8601" in result.output


def test_replay_without_a_broker_says_so(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    result = runner.invoke(app, ["replay", "marketing"])
    assert result.exit_code == 1
    assert "no broker answers at 127.0.0.1:1" in result.output


def test_an_invalid_setting_is_one_line_not_a_traceback(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATON_KAFKA_PARTITIONS", "many")
    result = runner.invoke(app, ["topics"])
    assert result.exit_code == 1
    assert "invalid BATON_* setting: kafka_partitions" in result.output
    assert "Traceback" not in result.output


def test_up_refuses_an_unknown_service(data_dir: Path) -> None:
    result = runner.invoke(app, ["up", "--services", "marketing,sales"])
    assert result.exit_code == 2
    assert "unknown service 'sales'" in result.output


def test_up_refuses_a_port_in_use(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("BATON_KPI_PORT", str(taken.getsockname()[1]))
        result = runner.invoke(app, ["up", "--services", "kpi"])
    assert result.exit_code == 1
    assert "port already in use: kpi" in result.output
