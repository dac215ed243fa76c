"""Settings from the environment (pydantic-settings).

Nothing is required to start: every value has an embedded default (SQLite under the
data folder, local task queue, no cluster).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.cwd() / ".ragportal"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAGPORTAL_", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url_override: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "RAGPORTAL_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "RAGPORTAL_REDIS_URL")
    )
    bootstrap_token: str | None = None
    anonymous_read: bool = False
    # Signs the web UI's session cookie; generated and kept in the data folder when unset.
    session_secret: str | None = None

    host: str = "127.0.0.1"
    port: int = 7007
    # Public base URL of the portal, used in links it hands out (task output, repo URLs).
    base_url: str = "http://127.0.0.1:7007"
    log_level: str = "INFO"
    log_json: bool = True

    # Catalog locations: where `file` targets may live, and what `url` targets may reach.
    allowed_file_roots: list[Path] = Field(default_factory=list)
    allow_private_urls: bool = False
    location_fetch_max_bytes: int = 5 * 1024 * 1024
    location_fetch_timeout_s: float = 10.0
    max_request_body_bytes: int = 10 * 1024 * 1024
    # Templates shipped with the portal, registered in the catalog at start-up.
    templates_dir: Path = Field(
        default_factory=lambda: Path(__file__).resolve().parent.parent / "scaffolder_templates"
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @cached_property
    def database_url(self) -> str:
        url = self.database_url_override or f"sqlite:///{self.data_dir / 'ragportal.db'}"
        # One PostgreSQL driver for the whole product: psycopg 3.
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def file_roots(self) -> list[Path]:
        return [p.expanduser().resolve() for p in self.allowed_file_roots] or [self.data_dir]

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)


def get_settings() -> Settings:
    return Settings()
