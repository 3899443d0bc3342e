"""Secrets by reference (procore_sync/secrets.py): from the environment or a Prefect Secret
block, resolved at use and masked from then on; used here by a real SFTP drop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, TypeAdapter, ValidationError

from connectors.drops import SftpDrop
from procore_sync.errors import ConfigError
from procore_sync.redact import redact
from procore_sync.secrets import Secret, SecretRef, reveal
from procore_sync.source_config import SftpDropConfig
from tests.sftp_server import SftpServer, sftp_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SftpServer]:
    with sftp_server(tmp_path_factory.mktemp("sftp")) as running:
        yield running


def test_a_secret_field_takes_the_value_or_a_reference() -> None:
    adapter = TypeAdapter(Secret)
    assert isinstance(adapter.validate_python("inline-value"), SecretStr)
    assert adapter.validate_python({"env": "HR_PASSWORD"}) == SecretRef(env="HR_PASSWORD")
    with pytest.raises(ValidationError, match='exactly one of "env" and "prefect_secret"'):
        adapter.validate_python({"env": "A", "prefect_secret": "b"})


def test_an_environment_reference_is_read_at_use_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    ref = SecretRef(env="PROCORE_SYNC_TEST_REF")
    with pytest.raises(ConfigError, match="the secret in environment variable PROCORE_SYNC_TEST_REF is not set"):
        reveal(ref)
    monkeypatch.setenv("PROCORE_SYNC_TEST_REF", "from-the-Env-4411")
    assert reveal(ref) == "from-the-Env-4411"
    assert "from-the-Env-4411" not in redact("connecting with from-the-Env-4411")


def test_sftp_password_from_the_environment(server: SftpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HR_SFTP_PASSWORD", server.password)
    drop = SftpDrop(SftpDropConfig(**server.config(password={"env": "HR_SFTP_PASSWORD"})))
    try:
        assert drop.ready("people") is False  # connected and looked
    finally:
        drop.close()


@pytest.mark.usefixtures("prefect_api")
def test_sftp_password_from_a_prefect_secret_block(server: SftpServer, tmp_path: Path) -> None:
    from prefect.blocks.system import Secret as SecretBlock

    SecretBlock(value=server.password).save("hr-sftp-password", overwrite=True)
    drop = SftpDrop(SftpDropConfig(**server.config(password={"prefect_secret": "hr-sftp-password"})))
    try:
        assert drop.ready("people") is False
    finally:
        drop.close()
    missing = SftpDrop(SftpDropConfig(**server.config(password={"prefect_secret": "no-such-block"})))
    with pytest.raises(ConfigError, match="there is no Prefect Secret block named 'no-such-block'"):
        missing.ready("people")
