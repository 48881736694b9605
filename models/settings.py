"""All configuration in one place: CLOSELOOP_* environment variables (or a .env file).
Nothing else in the code reads os.environ."""

from __future__ import annotations

import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLAYBOOKS = REPO_ROOT / "playbooks"


def default_playbooks() -> Path:
    """SPEC §5: CLOSELOOP_PLAYBOOKS defaults to `./playbooks`, the folder where closeloop is
    started, so a bureau that keeps its own content there (its org chart above all) gets it,
    not the demo district. Started where there is none (an installed `closeloop` run from any
    directory), it is the shipped content, as `./dev serve` in the repository has it anyway."""
    here = Path.cwd() / "playbooks"
    return here if here.is_dir() else DEFAULT_PLAYBOOKS


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected value may carry a password (evidence_url, secret), and
    # validation errors end up in logs and on terminals.
    model_config = SettingsConfigDict(env_prefix="CLOSELOOP_", env_file=".env", extra="ignore",
                                      hide_input_in_errors=True)

    data_dir: Path = Field(Path("./data"), description="Where the SQLite database, evidence "
                           "files, the generated signing secret and Prefect's home live.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the "
                                     "data dir. PostgreSQL: postgresql+psycopg://user@host/db")
    playbooks: Path = Field(default_factory=default_playbooks, description="Folder of "
                            "playbooks/*.yaml, with modules/, templates/, org/ and calendar/ "
                            "inside; default ./playbooks, or the shipped one where there is none.")
    org: Path | None = Field(None, description="Org chart YAML; default the demo district in "
                             "playbooks/org/.")
    calendar: Path | None = Field(None, description="Working-day calendar YAML (holidays and "
                                  "make-up workdays); default playbooks/calendar/.")
    sweep_interval: str = Field("30s", description="How often the deadline sweeper runs.")
    timezone: str = Field("Asia/Shanghai", description="Zone in which times are shown and "
                          "working days are counted.")
    secret: str | None = Field(None, description="Token signing secret; generated into the "
                               "data dir when unset.")
    environment: str = Field("development", description="development | production")
    prefect_enabled: bool = Field(True, description="Record runs in Prefect (off only for "
                                  "benchmarks that measure the database alone).")
    prefect_api_url: str | None = Field(
        None, validation_alias="PREFECT_API_URL",
        description="A Prefect server to record runs in (scale-out). Unset: closeloop starts "
        "its own Prefect server on loopback with its database in the data dir.")
    clock_offset: str | None = Field(
        None, description="Run the server's clock ahead by this much (like 10m or 2h): for "
        "drills and for tests that restart a real server across passing deadlines.")
    max_evidence_bytes: int = Field(20 * 1024 * 1024, ge=1024,
                                    description="Largest evidence upload (at least 1024).")
    evidence_url: str | None = Field(
        None, description="Where evidence files are kept. Unset: evidence/ in the data dir. "
        "file:///abs/dir: a directory elsewhere (a mounted share). "
        "http(s)://[user:pass@]host[:port]/bucket/prefix/: an object store that takes plain "
        "HTTP PUT/GET/HEAD of objects (WebDAV, nginx dav, a MinIO/S3 bucket whose policy "
        "allows it, a presigning gateway); user:pass is sent as HTTP Basic.")
    evidence_token: str | None = Field(None, description="Sent as Authorization: Bearer to an "
                                       "http(s) evidence_url.")
    min_free_disk_mb: int = Field(
        500, ge=0, description="Free space on the data dir's disk below which /healthz says "
        "`degraded` (disk.low): the operator hears of it before a full disk refuses writes.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:  # not a ValueError: say it as one
            raise ValueError(f"CLOSELOOP_TIMEZONE：不认识的时区 {value!r}，应为 IANA 时区名，如 "
                             f"Asia/Shanghai / unknown time zone {value!r}, expected an IANA "
                             "name like Asia/Shanghai") from exc
        return value

    @field_validator("sweep_interval")
    @classmethod
    def _sweep_interval(cls, value: str) -> str:
        # Checked when the settings load (not first read when the sweeper starts, after the
        # server said it was running), and at least a second: 0s swept without a pause.
        seconds = _interval_seconds(value)
        if seconds is None or seconds < 1:
            raise ValueError(f"CLOSELOOP_SWEEP_INTERVAL：应形如 30s、1m，至少 1s / expected "
                             f"like 30s or 1m, at least 1s; got {value!r}")
        return value

    @field_validator("evidence_url")
    @classmethod
    def _evidence_url(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        if not value:
            return None  # CLOSELOOP_EVIDENCE_URL= (empty) means unset: the data dir
        check_evidence_url(value)
        return value

    @model_validator(mode="after")
    def _evidence_token(self) -> Self:
        if not self.evidence_token:
            return self
        url = urlsplit(self.evidence_url or "")
        if url.scheme.lower() not in ("http", "https"):
            raise ValueError("CLOSELOOP_EVIDENCE_TOKEN：仅用于 http(s) 证据存储 / "
                             "CLOSELOOP_EVIDENCE_TOKEN is only for an http(s) "
                             "CLOSELOOP_EVIDENCE_URL")
        if url.username is not None:
            # One Authorization header: Basic from the URL or Bearer from the token, not both.
            raise ValueError("CLOSELOOP_EVIDENCE_URL 已含用户名密码，不能再设 "
                             "CLOSELOOP_EVIDENCE_TOKEN / give credentials in "
                             "CLOSELOOP_EVIDENCE_URL or CLOSELOOP_EVIDENCE_TOKEN, not both")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'closeloop.db').resolve()}"

    @property
    def org_path(self) -> Path:
        return self.org or self.playbooks / "org" / "demo-district.yaml"

    @property
    def calendar_path(self) -> Path:
        return self.calendar or self.playbooks / "calendar" / "cn-workdays.yaml"

    @property
    def sweep_seconds(self) -> float:
        seconds = _interval_seconds(self.sweep_interval)
        assert seconds is not None  # checked when the settings loaded
        return seconds

    @property
    def clock_offset_seconds(self) -> float:
        if not self.clock_offset:
            return 0.0
        match = re.fullmatch(r"\s*(\d+)\s*(s|m|h|d)\s*", self.clock_offset)
        if not match:
            raise ValueError(
                f"CLOSELOOP_CLOCK_OFFSET: 应形如 10m、2h / expected like 10m, 2h; got "
                f"{self.clock_offset!r}"
            )
        return float(int(match[1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]])

    def signing_secret(self) -> str:
        """The configured secret, or one generated once and kept (0600) in the data dir."""
        if self.secret:
            if self.environment != "development" and self.secret in {"changeme", "secret"}:
                raise ValueError("CLOSELOOP_SECRET 是占位值，请设真正的密钥 / "
                                 "CLOSELOOP_SECRET is a placeholder; set a real secret")
            return self.secret
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        return path.read_text().strip()


def _interval_seconds(value: str) -> float | None:
    match = re.fullmatch(r"\s*(\d+)\s*(s|m|h)\s*", value)
    return float(int(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2]]) if match else None


# Stored paths (Evidence.stored_path, 500 characters) are the store's location plus the key
# `<sha[:2]>/<sha>` (67 characters); a longer location would not fit.
MAX_EVIDENCE_LOCATION = 400


def check_evidence_url(value: str) -> None:
    """Raise ValueError naming CLOSELOOP_EVIDENCE_URL unless `value` is a file:///abs/dir or an
    http(s)://host/... URL. The message never repeats the URL: it may hold a password."""
    expected = "file:///abs/dir or http(s)://[user:pass@]host[:port]/bucket/prefix/"
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        raise ValueError(f"CLOSELOOP_EVIDENCE_URL：无法解析 / CLOSELOOP_EVIDENCE_URL: not a URL; "
                         f"expected {expected}") from None
    scheme = url.scheme.lower()
    if scheme == "file":
        if url.netloc not in ("", "localhost") or not url.path.startswith("/"):
            raise ValueError("CLOSELOOP_EVIDENCE_URL：file:// 须为绝对路径 / "
                             "CLOSELOOP_EVIDENCE_URL: expected file:///abs/dir (three slashes, "
                             "an absolute directory)")
    elif scheme in ("http", "https"):
        if not url.hostname:
            raise ValueError("CLOSELOOP_EVIDENCE_URL：缺少主机名 / CLOSELOOP_EVIDENCE_URL: "
                             f"no host; expected {expected}")
    else:
        zh, en = (f"不支持 {scheme}://", f"{scheme}:// is not supported") if scheme else (
            "缺少 file:// 或 http(s)://", "no scheme")
        raise ValueError(f"CLOSELOOP_EVIDENCE_URL：{zh} / CLOSELOOP_EVIDENCE_URL: {en}; "
                         f"expected {expected}")
    if url.query or url.fragment:
        raise ValueError("CLOSELOOP_EVIDENCE_URL：不能带 ? 或 # / CLOSELOOP_EVIDENCE_URL: "
                         "no query or fragment; object keys are appended to the path")
    location = f"{scheme}://{url.netloc.rpartition('@')[2]}{url.path}"  # as stored: no userinfo
    if len(location) > MAX_EVIDENCE_LOCATION:
        raise ValueError("CLOSELOOP_EVIDENCE_URL：过长 / CLOSELOOP_EVIDENCE_URL: longer than "
                         f"{MAX_EVIDENCE_LOCATION} characters; stored paths would not fit")


@lru_cache
def get_settings() -> Settings:
    return Settings()
