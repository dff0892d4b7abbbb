"""Settings shared by every service (DESIGN §2), read from `BATON_*` environment variables."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES: tuple[str, ...] = ("marketing", "inside_sales", "field_sales", "customer_success", "kpi")
DEFAULT_PORTS: dict[str, int] = {name: 8001 + i for i, name in enumerate(SERVICES)}
MIN_SECRET_LENGTH = 32


class BatonSettings(BaseSettings):
    """What every process of Baton reads: broker, security, data dir, logging."""

    model_config = SettingsConfigDict(
        env_prefix="BATON_", extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    data_dir: Path = Path("./var")
    env: Literal["dev", "prod"] = "dev"

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    # Off against the embedded Tansu broker, which rejects aiokafka's InitProducerId v0.
    kafka_idempotence: bool = True
    kafka_partitions: int = Field(6, ge=1, le=1000)
    kafka_replication_factor: int = Field(1, ge=1, le=10)
    kafka_linger_ms: int = Field(5, ge=0, le=1000)
    kafka_request_timeout_ms: int = Field(10_000, ge=1000)
    kafka_session_timeout_ms: int = Field(10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(1_000, ge=100)
    # How long a fetch may wait for data. Kafka answers as soon as data arrives, whatever this
    # is; the embedded broker may hold an idle fetch up to about half of it, so it bounds the
    # hand-off latency there (500, Kafka's default, gave a p99 of ~250 ms).
    kafka_fetch_max_wait_ms: int = Field(50, ge=1, le=10_000)

    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str = "baton"
    jwt_audience: str = "baton"

    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"

    @property
    def jwt_secret_file(self) -> Path:
        return self.data_dir / "jwt-secret"

    def resolved_jwt_secret(self) -> str:
        """The HS256 secret: from the environment, else from the data dir (made on first use)."""
        if self.jwt_secret is not None:
            value = self.jwt_secret.get_secret_value()
            if len(value) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"BATON_JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters"
                )
            return value
        if self.env == "prod":
            raise ValueError(
                "BATON_JWT_SECRET or BATON_JWT_JWKS_URL must be set when BATON_ENV=prod"
            )
        return ensure_secret_file(self.jwt_secret_file)


def ensure_secret_file(path: Path) -> str:
    """Read the secret kept at `path`, writing a new random one (mode 0600) if there is none."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value)
    try:
        os.link(tmp, path)  # fails if another process won the race; then theirs is kept
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()


class ServiceSettings(BatonSettings):
    """Settings of one service.

    Each service subclasses it, setting `service` and giving `database_url` and `port` the
    aliases `BATON_<SERVICE>_DATABASE_URL` and `BATON_<SERVICE>_PORT`.
    """

    service: ClassVar[str]

    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 0
    outbox_batch_size: int = Field(500, ge=1, le=10_000)  # rows per lane and relay pass
    outbox_poll_interval_s: float = Field(1.0, gt=0, le=60)
    # How long the relay waits, once woken (or after a run), before it reads what is pending:
    # the commits of that time go out together, in fewer and larger runs. Kafka's linger.
    outbox_linger_ms: int = Field(5, ge=0, le=1000)
    outbox_lanes: int = Field(8, ge=1, le=256)
    consumer_max_attempts: int = Field(3, ge=1, le=20)
    consumer_batch_size: int = Field(500, ge=1, le=10_000)
    # Appended to every consumer group id, e.g. to run a second, independent copy of the system.
    consumer_group_suffix: str = Field("", pattern=r"^[A-Za-z0-9._-]{0,50}$")
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # SLA sweeps: how often they run, and how long a just-received hand-off is left alone
    # (history loaded with backdated times sends its follow-ups right after the hand-off).
    sweep_interval_s: float = Field(15.0, gt=0, le=3600)
    sweep_grace_s: float = Field(60.0, ge=0, le=86_400)
    idempotency_ttl_s: int = Field(86_400, ge=60)

    @model_validator(mode="after")
    def _defaults(self) -> ServiceSettings:
        if not self.database_url:
            path = (self.data_dir / f"{self.service}.db").resolve()
            self.database_url = f"sqlite+aiosqlite:///{path}"
        return self

    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def topic(self) -> str:
        return topic_of(self.service)

    @property
    def group_id(self) -> str:
        return f"baton.{self.service}{self.consumer_group_suffix}"


def topic_of(service: str) -> str:
    return f"baton.{service}"


DLQ_TOPIC = "baton.dlq"
ALL_TOPICS: tuple[str, ...] = (*(topic_of(s) for s in SERVICES if s != "kpi"), DLQ_TOPIC)
