"""Every ``FENGQIAO_*`` setting in one typed model (pydantic-settings).

The environment is read once, at start: by ``fengqiao serve``, ``fengqiao worker`` and
every other CLI command, by the app factory (``api.http.app.create_app``) and by an engine
built without settings (``Fengqiao()``). What reads a setting takes it as a constructor
argument, passed down from there; no module reads the environment on import, and
``domain/`` never sees settings at all.

``Settings()`` is the defaults (plus any keyword given); :meth:`Settings.from_environment`
reads ``FENGQIAO_<FIELD>`` for each field. A value that does not fit its field (not a
number, a number < 0, not finite) raises :class:`SettingsError` naming the variable, and
the commands stop with exit code 2. The table in ``docs/operations.md`` lists every field
(``tests/integration/test_settings.py`` checks it against this model).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

PREFIX = "FENGQIAO_"
Count = Annotated[int, Field(ge=0)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class SettingsError(ValueError):
    """A setting's value does not fit: the message starts ``FENGQIAO_<NAME>='value'``."""


class Settings(BaseSettings):
    """The settings; each field is read from ``FENGQIAO_<FIELD NAME IN CAPITALS>``."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, frozen=True, extra="ignore", env_ignore_empty=True
    )

    # the store
    database_url: str | None = None  # None: sqlite:///var/fengqiao.db
    pool_size: Count = 4
    pool_overflow: Count = 16
    # the engine
    case_cache: Count = 2000
    key_cache: Count = 10000
    reference_recheck: Seconds = 1.0
    signing_key: Path | None = (
        None  # None: signing-key.pem beside the SQLite file, var/ for PostgreSQL
    )
    trusted_key_ids: str = ""  # comma-separated
    cjk_font: Path | None = None  # None: the first of engine.casefile_pdf.FONT_CANDIDATES found
    log_origin: str = "fengqiao.invalid/audit"  # the signed tree heads' origin line and key name
    search_key: Path | None = None  # None: search-key beside the SQLite file, var/ for PostgreSQL
    checkpoint_every_events: Count = 1000
    checkpoint_every_minutes: Seconds = 10.0
    checkpoint_poll_seconds: Seconds = 30.0
    # the feed, webhooks
    deployment: str = "demo"
    public_url: str = "http://localhost:8000"
    feed_direct: bool = True
    feed_cache: Count = 100000
    sse_heartbeat: Seconds = 15.0
    webhook_allow_private: bool = False
    webhook_max_subscriptions: Count = 10  # per user
    webhook_senders: Annotated[int, Field(ge=1)] = (
        8  # attempts in flight at once, one per subscription
    )
    webhook_key: Path | None = None  # None: webhook-key beside the SQLite file, var/ for PostgreSQL
    open311_public: bool = False  # 1: anonymous GET requests (without personal fields)
    # projections
    projections_url: str | None = None  # None: beside the events
    projections_pool_size: Count = 4
    projections_batch: Count = 1000
    decoder_cache: Count = 10000
    province_url: str | None = None
    # workers
    lease_poll_seconds: Seconds = 1.0
    lease_keepalive_seconds: Seconds = 1.0
    malloc_arenas: Count = 2
    # HTTP limits
    max_body_bytes: Count = 1024 * 1024
    evidence_max_bytes: Count = 10 * 1024 * 1024  # one evidence file (photo, PDF) at most
    ready_max_lag: Count = 1000
    max_wait_seconds: Seconds = 5.0
    unready_after_database_error: Seconds = 5.0
    request_deadline_seconds: Seconds = 30.0  # 0: no deadline
    request_threads: Annotated[int, Field(ge=1)] = (
        4  # a process's requests working at once (api.http.threads)
    )
    auth_failures_allowed: Count = 20
    auth_failure_window: Seconds = 60.0
    trusted_proxies: str = (
        ""  # comma-separated addresses or networks whose X-Forwarded-For is believed
    )
    metrics_token: str = ""  # set: /metrics needs Authorization: Bearer <it>
    # logs, the CLI, diagnostics
    log_format: str = ""  # json, console; "": JSON unless stderr is a terminal
    log_level: str = "INFO"
    actor: str | None = None
    tracemalloc: bool = False
    tracemalloc_dir: Path = Path(".")
    tracemalloc_frames: Count = 1
    memory_dir: Path | None = None
    test_postgres_url: str = "postgresql://postgres@127.0.0.1:5432/test"

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)  # ValueError names the bad part
        return value.strip()

    @field_validator("log_origin")
    @classmethod
    def _origin(cls, value: str) -> str:
        if not value or any(ch.isspace() or ch == "+" for ch in value):
            raise ValueError(
                "the log origin must be non-empty, without spaces or '+' (C2SP signed-note)"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """``Settings(...)`` takes its keywords only: the environment is read by
        :meth:`from_environment`, where the process starts."""
        return (init_settings,)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``environ`` (default: the process's environment)."""
        source = EnvSettingsSource(cls)
        if environ is not None:
            source.env_vars = {
                name.lower(): value for name, value in environ.items() if value != ""
            }
        values = source()
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise SettingsError(_first_problem(error, values)) from None

    @staticmethod
    def variable(field: str) -> str:
        """The environment variable of a field: ``case_cache`` → ``FENGQIAO_CASE_CACHE``."""
        return PREFIX + field.upper()

    def base_url(self, request_base: str | None = None) -> str:
        """The base of every absolute URL handed out: ``FENGQIAO_PUBLIC_URL`` when it is
        set, else the base URL the request came to (``request_base``), else the default."""
        if "public_url" in self.model_fields_set or not request_base:
            return self.public_url.rstrip("/")
        return request_base.rstrip("/")

    def trusted_keys(self) -> set[str]:
        return {key.strip() for key in self.trusted_key_ids.split(",") if key.strip()}


def _first_problem(error: ValidationError, values: dict[str, Any]) -> str:
    problem = error.errors()[0]
    field = str(problem["loc"][0])
    shown = f"{Settings.variable(field)}={values.get(field, problem['input'])!r}"
    if problem["type"] in ("int_parsing", "int_from_float"):
        return f"{shown} is not int"
    if problem["type"] == "float_parsing":
        return f"{shown} is not float"
    if problem["type"] in ("greater_than_equal", "finite_number"):
        return f"{shown} must be a finite number >= 0"
    return f"{shown}: {problem['msg']}"


DEFAULTS = Settings()
