"""Profiles: one table per Procore company over the base settings, partitions of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from procore_sync.errors import ProfileError
from procore_sync.profiles import Profiles, load_settings, sink_partition, state_partition
from procore_sync.redact import redact
from procore_sync.settings import Settings

TWO_COMPANIES = """
[acme]
environment = "production"
company_id = 1234
client_id = "acme-client"
client_secret = { env = "ACME_PROCORE_CLIENT_SECRET" }
schedule_cron = "15 7-19/3 * * 1-5"

[globex]
company_id = 99
batch_size = 200
"""


@pytest.fixture
def profiles_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A profiles file, the base settings' only source besides defaults (no .env here)."""
    monkeypatch.chdir(tmp_path)
    for name in ("COMPANY_ID", "STATE_PATH", "STATE_URL", "ERP_SINK_URL", "HOME", "QUOTA_LIMIT_NAME", "BATCH_SIZE"):
        monkeypatch.delenv(f"PROCORE_SYNC_{name}", raising=False)
    path = tmp_path / "companies.toml"
    monkeypatch.setenv("PROCORE_SYNC_PROFILES_FILE", str(path))
    path.write_text(TWO_COMPANIES)
    return path


def test_no_profile_is_the_base_settings_alone(profiles_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCORE_SYNC_COMPANY_ID", "7")
    settings = load_settings(None)
    assert settings.profile is None
    assert settings.company_id == 7 and settings.quota_limit_name == "procore-api-quota"
    assert settings.state_path == Path(".procore-sync/state.duckdb")


def test_without_the_file_there_are_no_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROCORE_SYNC_PROFILES_FILE", raising=False)
    assert Profiles.load(Settings()).names == []
    with pytest.raises(ProfileError, match="unknown profile 'acme'; known: none"):
        load_settings("acme")


def test_a_profile_overrides_the_environment_and_inherits_the_rest(profiles_file: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCORE_SYNC_COMPANY_ID", "7")
    monkeypatch.setenv("PROCORE_SYNC_BATCH_SIZE", "500")
    acme, globex = load_settings("acme"), load_settings("globex")
    assert (acme.profile, acme.company_id, acme.environment.value) == ("acme", 1234, "production")
    assert acme.schedule_cron == "15 7-19/3 * * 1-5" and acme.batch_size == 500  # inherited from the base
    assert (globex.company_id, globex.batch_size) == (99, 200)
    assert globex.schedule_cron == Settings().schedule_cron


def test_an_unknown_profile_is_a_clear_error_naming_the_known(profiles_file: Path) -> None:
    with pytest.raises(ProfileError, match=r"unknown profile 'initech'; known: acme, globex"):
        load_settings("initech")


def test_each_profile_has_its_own_state_file_and_quota_budget(profiles_file: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # A base state path is not inherited: two companies would share it.
    monkeypatch.setenv("PROCORE_SYNC_STATE_PATH", "shared/state.duckdb")
    made = Profiles.load(Settings()).all_settings(Settings())
    acme, globex = made["acme"], made["globex"]
    assert acme.state_path == Path(".procore-sync/acme/state.duckdb")
    assert globex.erp_path == Path(".procore-sync/globex/erp/erp.duckdb")
    assert state_partition(acme) != state_partition(globex)
    assert acme.quota_limit_name == "procore-api-quota-production-1234"
    assert globex.quota_limit_name == "procore-api-quota-local-99"


def test_a_quota_budget_named_by_the_profile_is_kept(profiles_file: Path) -> None:
    profiles_file.write_text(TWO_COMPANIES + 'quota_limit_name = "globex-budget"\n')
    assert load_settings("globex").quota_limit_name == "globex-budget"


def test_two_profiles_sharing_a_state_file_are_refused(profiles_file: Path) -> None:
    profiles_file.write_text(TWO_COMPANIES.replace("batch_size = 200", 'state_path = ".procore-sync/acme/state.duckdb"'))
    with pytest.raises(ProfileError, match="'acme' and 'globex' .* share the state"):
        Profiles.load(Settings()).all_settings(Settings())


def test_on_a_shared_postgresql_state_each_profile_has_its_schema(profiles_file: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCORE_SYNC_STATE_URL", "postgresql://sync:pw-4471@db.internal/procore_sync?sslmode=require")
    profiles_file.write_text(TWO_COMPANIES + 'state_schema = "globex_state"\n')
    made = Profiles.load(Settings()).all_settings(Settings())
    acme, globex = (made[n].state_url.get_secret_value() for n in ("acme", "globex"))
    assert acme.endswith("sslmode=require&options=-csearch_path%3Dprocore_sync_acme")
    assert globex.endswith("options=-csearch_path%3Dglobex_state") and "pw-4471" in globex
    assert Settings().state_url.get_secret_value().endswith("sslmode=require")  # the base unchanged


def test_on_a_shared_postgresql_erp_sink_each_profile_has_its_schema(profiles_file: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The ERP sink's URL is handled as the state's: inherited into a schema of the profile's,
    the password only from the base (the environment), never from the profiles file."""
    monkeypatch.setenv("PROCORE_SYNC_ERP_SINK_URL", "postgresql://erp:pw-5582@erp.internal/erp")
    profiles_file.write_text(TWO_COMPANIES + 'erp_sink_schema = "globex_erp"\n')
    made = Profiles.load(Settings()).all_settings(Settings())
    acme, globex = (made[n].erp_sink_url.get_secret_value() for n in ("acme", "globex"))
    assert acme.endswith("options=-csearch_path%3Dprocore_sync_acme") and "pw-5582" in acme
    assert globex.endswith("options=-csearch_path%3Dglobex_erp")
    assert "pw-5582" not in sink_partition(made["acme"]) and made["acme"].state_url is None
    profiles_file.write_text(TWO_COMPANIES + 'erp_sink_url = "postgresql://globex:pw@db/globex_erp"\n')
    with pytest.raises(ProfileError, match="erp_sink_url carries a password"):
        load_settings("globex")
    profiles_file.write_text(TWO_COMPANIES + 'erp_sink_schema = "procore_sync_acme"\n')
    with pytest.raises(ProfileError, match="'acme' and 'globex' .* share the ERP sink"):
        Profiles.load(Settings()).all_settings(Settings())


def test_an_erp_sink_url_is_a_postgresql_url_whose_password_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROCORE_SYNC_ERP_SINK_URL", "erp.duckdb")
    with pytest.raises(ValueError, match="erp_sink_url is a postgresql:// URL; leave it unset for the ERP file"):
        Settings()
    monkeypatch.setenv("PROCORE_SYNC_ERP_SINK_URL", "postgresql://erp:sink-pw-9031@erp.internal/erp")
    Settings()
    assert "sink-pw-9031" not in redact("connection to postgresql://erp:sink-pw-9031@erp.internal failed")


def test_a_secret_written_into_the_profile_is_refused(profiles_file: Path) -> None:
    profiles_file.write_text(TWO_COMPANIES.replace('{ env = "ACME_PROCORE_CLIENT_SECRET" }', '"hunter2-acme"'))
    with pytest.raises(ProfileError, match="client_secret is a secret written into the profiles file"):
        load_settings("acme")


def test_a_state_url_with_a_password_in_the_profile_is_refused(profiles_file: Path) -> None:
    profiles_file.write_text(TWO_COMPANIES + 'state_url = "postgresql://globex:pw@db/globex"\n')
    with pytest.raises(ProfileError, match="state_url carries a password"):
        load_settings("globex")


def test_the_client_secret_reference_is_resolved_when_used(profiles_file: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_PROCORE_CLIENT_SECRET", raising=False)
    acme = load_settings("acme")  # loads without it: commands that make no Procore call work
    with pytest.raises(Exception, match="ACME_PROCORE_CLIENT_SECRET is not set"):
        acme.client_secret_value
    monkeypatch.setenv("ACME_PROCORE_CLIENT_SECRET", "s3cret-acme-771")
    assert acme.client_secret_value == "s3cret-acme-771"


@pytest.mark.parametrize(("text", "message"), [
    ("[acme]\ncompany_idd = 3\n", "sets company_idd, which is no setting"),
    ('[acme]\nprofiles_file = "x.toml"\n', "a profile may not set"),
    ("[Acme]\ncompany_id = 3\n", "profile name 'Acme'"),
    ("company_id = 3\n", "company_id is not a profile table"),
    ("[acme]\ncompany_id = -3\n", r"profile 'acme' in .*: company_id: Input should be greater than 0"),
    ("[acme\n", "is not valid TOML"),
])
def test_a_wrong_profiles_file_is_a_clear_error(profiles_file: Path, text: str, message: str) -> None:
    profiles_file.write_text(text)
    with pytest.raises(ProfileError, match=message):
        load_settings("acme")
