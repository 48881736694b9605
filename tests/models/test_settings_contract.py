"""SPEC.md §5 "Configuration": every variable it names is read from the environment and from a
`.env` file, under exactly that name, with the defaults it gives. Renaming one would silently
run a bureau on the demo district, an unsigned token or the wrong time zone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from factories import DEMO_ORG, SHIPPED_PLAYBOOKS

from models.settings import Settings

# name in SPEC.md §5 -> (value set, what the settings read from it)
SPEC_VARIABLES: dict[str, tuple[str, object]] = {
    "CLOSELOOP_DATA_DIR": ("/srv/closeloop/data", Path("/srv/closeloop/data")),
    "CLOSELOOP_DATABASE_URL": ("postgresql+psycopg://cl@db.local/closeloop",
                               "postgresql+psycopg://cl@db.local/closeloop"),
    "CLOSELOOP_PLAYBOOKS": ("/srv/closeloop/playbooks", Path("/srv/closeloop/playbooks")),
    "CLOSELOOP_ORG": ("/srv/closeloop/org.yaml", Path("/srv/closeloop/org.yaml")),
    "CLOSELOOP_SWEEP_INTERVAL": ("5s", 5.0),
    "CLOSELOOP_TIMEZONE": ("Asia/Urumqi", "Asia/Urumqi"),
    "CLOSELOOP_SECRET": ("a-long-bureau-secret", "a-long-bureau-secret"),
}


def _read(settings: Settings, variable: str) -> object:
    return {
        "CLOSELOOP_DATA_DIR": settings.data_dir,
        "CLOSELOOP_DATABASE_URL": settings.db_url,
        "CLOSELOOP_PLAYBOOKS": settings.playbooks,
        "CLOSELOOP_ORG": settings.org_path,
        "CLOSELOOP_SWEEP_INTERVAL": settings.sweep_seconds,
        "CLOSELOOP_TIMEZONE": settings.timezone,
        "CLOSELOOP_SECRET": settings.signing_secret(),
    }[variable]


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CLOSELOOP_* in the environment, started in an empty folder (no .env, no playbooks)."""
    for name in list(os.environ):
        if name.startswith("CLOSELOOP_"):
            monkeypatch.delenv(name)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    return here


@pytest.mark.parametrize("variable", sorted(SPEC_VARIABLES))
def test_each_spec_variable_is_read_from_the_environment(
        bare: Path, monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    value, expected = SPEC_VARIABLES[variable]
    monkeypatch.setenv(variable, value)
    assert _read(Settings(), variable) == expected


@pytest.mark.parametrize("variable", sorted(SPEC_VARIABLES))
def test_each_spec_variable_is_read_from_a_dot_env_file(bare: Path, variable: str) -> None:
    value, expected = SPEC_VARIABLES[variable]
    (bare / ".env").write_text(f"{variable}={value}\n", encoding="utf-8")
    assert _read(Settings(), variable) == expected


def test_defaults_are_the_ones_spec_names(bare: Path) -> None:
    settings = Settings()
    assert settings.data_dir == Path("./data")
    assert settings.db_url == f"sqlite:///{(bare / 'data' / 'closeloop.db').resolve()}"
    # Started where there is no ./playbooks: the shipped playbooks and the demo district.
    assert settings.playbooks == SHIPPED_PLAYBOOKS
    assert settings.org_path == DEMO_ORG
    assert settings.sweep_seconds == 30.0
    assert settings.timezone == "Asia/Shanghai"
    assert settings.secret is None  # generated into the data dir when unset


def test_default_playbooks_is_the_playbooks_folder_where_closeloop_starts(bare: Path) -> None:
    (bare / "playbooks").mkdir()
    assert Settings().playbooks.resolve() == (bare / "playbooks").resolve()


def test_a_bureau_folder_s_own_org_chart_is_used_without_configuring_anything(
        bare: Path) -> None:
    """An operator who keeps the bureau's content in ./playbooks and runs `closeloop` there
    gets their own org chart, not the demo district's (where a person of theirs is unknown)."""
    (bare / "playbooks" / "org").mkdir(parents=True)
    (bare / "playbooks" / "org" / "demo-district.yaml").write_text(
        "units:\n"
        "  - id: bureau\n"
        "    name: 某区应急管理局\n"
        "    type: district\n"
        "    people:\n"
        "      - {id: bureau-duty, name: 值班员甲, roles: [duty_officer], notify: []}\n",
        encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOSELOOP_", "PREFECT_"))}
    done = subprocess.run([sys.executable, "-m", "api.cli", "token", "bureau-duty"], cwd=bare,
                          env=env | {"PYTHONIOENCODING": "utf-8"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("cl1.")
    assert (bare / "data").is_dir()  # ./data, beside it
