"""The demo's preparation: the sample ERP once, and the HR drop its Resource Planning people come
from, unless the settings name sources of their own."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from procore_sync.demo import DemoOptions, prepare
from procore_sync.settings import Settings

SMALL = DemoOptions(scale=0.05)


def test_the_hr_system_uploads_once_and_the_drop_becomes_the_people_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROCORE_SYNC_HOME", str(tmp_path))
    # "{}": no sources of one's own; set through monkeypatch, so what prepare() sets is undone.
    monkeypatch.setenv("PROCORE_SYNC_SOURCES", "{}")
    drop = prepare(Settings(), SMALL)
    assert drop == (tmp_path / "drops" / "hr").resolve()
    assert (drop / "resource_people.csv").read_bytes() == (tmp_path / "erp" / "templates" / "resource_people.csv").read_bytes()
    assert (drop / "resource_people.csv.done").exists()
    assert Settings().sources["resource_people"].folder == drop  # type: ignore[union-attr]
    (drop / "resource_people.csv").unlink()  # the first sync took and archived it
    monkeypatch.setenv("PROCORE_SYNC_SOURCES", "{}")  # the next demo is a new process
    assert prepare(Settings(), SMALL) == drop and not (drop / "resource_people.csv").exists(), "uploaded once"


def test_an_integrators_own_sources_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCORE_SYNC_HOME", str(tmp_path))
    own = {"resource_people": {"kind": "folder", "folder": str(tmp_path / "theirs")}}
    monkeypatch.setenv("PROCORE_SYNC_SOURCES", json.dumps(own))
    assert prepare(Settings(), SMALL) is None
    assert not (tmp_path / "drops").exists()
    assert json.loads(os.environ["PROCORE_SYNC_SOURCES"]) == own
