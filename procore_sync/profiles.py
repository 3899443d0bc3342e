"""Profiles: one installation (one Prefect server, one work pool) syncing several Procore companies.

The profiles file (``PROCORE_SYNC_PROFILES_FILE``, default ``profiles.toml`` in the working
folder) holds one table per company, named for the profile::

    [acme]
    environment = "production"
    company_id = 1234
    client_id = "acme-client-id"
    client_secret = { env = "ACME_PROCORE_CLIENT_SECRET" }
    schedule_cron = "15 7-19/3 * * 1-5"

A table's keys are settings (the environment variables' names without ``PROCORE_SYNC_``, in
lower case); its values override the base settings (environment and ``.env``) for that profile
alone. What two companies must never share is the profile's own unless its table says otherwise:

- ``home`` is ``<base home>/<profile>``, and the state file, the ERP file and the export folder
  are under it unless the table names them (a base ``PROCORE_SYNC_STATE_PATH`` is not inherited);
- on a PostgreSQL state shared by the base (``state_url``), the profile's tables are in a schema
  of their own, ``state_schema`` (default ``procore_sync_<profile>``, created by the operator);
  likewise the ERP sink's tables on a PostgreSQL database shared by the base (``erp_sink_url``),
  in ``erp_sink_schema`` (the same default);
- the quota budget is ``<base quota_limit_name>-<environment>-<company id>``.

Secrets are named by reference only (``{ env = ... }`` or ``{ prefect_secret = ... }``), and a
profile's ``state_url`` or ``erp_sink_url`` carries no password: the file is configuration an operator edits and
may keep in git. No profile selected: the base settings alone, exactly as without this module.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import TomlConfigSettingsSource

from procore_sync.errors import ProfileError
from procore_sync.settings import Settings

# A profile's name goes into deployment names, tags and a schema name.
PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Keys of a profile's table that are no setting.
PROFILE_KEYS = {"state_schema", "erp_sink_schema"}
# The PostgreSQL URLs a profile may inherit from the base, each with the key of its schema.
SHARED_URLS = {"state_url": "state_schema", "erp_sink_url": "erp_sink_schema"}
# Settings a profile may not set: they say where the profiles are.
NOT_IN_A_PROFILE = {"profiles_file"}
# Each path under home unless the profile names it.
HOME_PATHS = ("state_path", "erp_path", "export_dir")


@dataclass(frozen=True)
class Profiles:
    """The profiles file's tables, checked for names and keys (values are checked per profile)."""

    path: Path
    tables: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, base: Settings) -> "Profiles":
        path = base.profiles_file
        try:
            data = TomlConfigSettingsSource(Settings, toml_file=path).toml_data  # {} without the file
        except tomllib.TOMLDecodeError as exc:
            raise ProfileError(f"{path} is not valid TOML: {exc}") from exc
        for name, table in data.items():
            _check_table(path, name, table)
        return cls(path, data)

    @property
    def names(self) -> list[str]:
        return list(self.tables)

    def settings_for(self, name: str, base: Settings) -> Settings:
        """The profile's settings: its table over the base, its partitions derived from its name."""
        if name not in self.tables:
            known = ", ".join(self.names) or f"none ({self.path} has no profile)"
            raise ProfileError(f"unknown profile {name!r}; known: {known}")
        table = self.tables[name]
        try:
            settings = Settings(**_values(name, table, base))
        except ValidationError as exc:
            raise ProfileError(f"profile {name!r} in {self.path}: {_errors(exc)}") from exc
        _refuse_inline_secrets(name, table, settings)
        if "quota_limit_name" not in table:
            derived = f"{base.quota_limit_name}-{settings.environment.value}-{settings.company_id}"
            settings = settings.model_copy(update={"quota_limit_name": derived})
        settings._profile = name
        return settings

    def all_settings(self, base: Settings) -> dict[str, Settings]:
        """Every profile's settings, refused when two would share one state."""
        made = {name: self.settings_for(name, base) for name in self.names}
        for what, partition, fix in (("state", state_partition, "home, state_path, state_url or state_schema"),
                                     ("ERP sink", sink_partition, "home, erp_path, erp_sink_url or erp_sink_schema")):
            seen: dict[str, str] = {}
            for name, settings in made.items():
                where = partition(settings)
                if where in seen:
                    raise ProfileError(f"profiles {seen[where]!r} and {name!r} in {self.path} share the {what} "
                                       f"{where}; give each its own {fix}")
                seen[where] = name
        return made


def load_settings(profile: str | None = None) -> Settings:
    """The settings of a run or a command: the base alone (no profile), else the profile's."""
    base = Settings()
    return base if profile is None else Profiles.load(base).settings_for(profile, base)


def profile_tag(profile: str) -> str:
    """The tag of a profile's deployments and so of their runs."""
    return f"profile:{profile}"


def state_partition(settings: Settings) -> str:
    """Where the settings keep their state, without a password: the file, or database and schema."""
    return _partition(settings.state_url, settings.state_path)


def sink_partition(settings: Settings) -> str:
    """Where the settings' ERP sink writes its tables, without a password (as ``state_partition``)."""
    return _partition(settings.erp_sink_url, settings.erp_path)


def _partition(url: SecretStr | None, path: Path) -> str:
    if url is None:
        return str(path.resolve())
    parts = urlsplit(url.get_secret_value())
    return urlunsplit((parts.scheme, f"{parts.hostname or ''}:{parts.port or 5432}", parts.path, parts.query, ""))


def with_schema(url: str, schema: str) -> str:
    """``url`` with ``schema`` first on its search path (libpq's ``options``), other options kept."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join(o for k, v in query if k == "options" for o in v.split() if "search_path" not in o)
    options = f"{options} -csearch_path={schema}".strip()
    query = [(k, v) for k, v in query if k != "options"] + [("options", options)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _check_table(path: Path, name: str, table: object) -> None:
    if not isinstance(table, dict):
        raise ProfileError(f"{path}: {name} is not a profile table; write [{name}] and its settings under it")
    if not PROFILE_NAME.match(name):
        raise ProfileError(f"{path}: profile name {name!r} is not lowercase letters, digits and dashes "
                          "(at most 40, first a letter or digit)")
    unknown = sorted(set(table) - set(Settings.model_fields) - PROFILE_KEYS)
    refused = sorted(set(table) & NOT_IN_A_PROFILE)
    if unknown or refused:
        raise ProfileError(f"{path}: profile {name!r} sets {', '.join(unknown + refused)}, which "
                          f"{'is no setting' if unknown else 'a profile may not set'}")


def _values(name: str, table: dict[str, Any], base: Settings) -> dict[str, Any]:
    """The keyword arguments of the profile's settings (they override environment and .env)."""
    values = {key: value for key, value in table.items() if key not in PROFILE_KEYS}
    values.setdefault("home", base.home / name)
    for path in HOME_PATHS:
        values.setdefault(path, None)  # under the profile's home, not the base's path
    for key, schema_key in SHARED_URLS.items():
        url = _profile_url(name, table, base, key, schema_key)
        if url is not None:
            values[key] = url
    return values


def _profile_url(name: str, table: dict[str, Any], base: Settings, key: str, schema_key: str) -> str | None:
    """The profile's PostgreSQL URL for ``key`` (``state_url``, ``erp_sink_url``): its own, without
    a password, or the base's in the profile's schema; None where it has none (a file)."""
    inherited: SecretStr | None = getattr(base, key)
    url = table.get(key) or (inherited.get_secret_value() if inherited else None)
    if url is None:
        if schema_key in table:
            raise ProfileError(f"profile {name!r} sets {schema_key}, but it has no {key} (a file instead)")
        return None
    if key in table and urlsplit(str(url)).password:
        raise ProfileError(f"profile {name!r}: {key} carries a password; leave it out of the profiles file "
                           "(PGPASSWORD or ~/.pgpass where the flows run)")
    schema = table.get(schema_key) or (None if key in table else f"procore_sync_{name.replace('-', '_')}")
    if schema is not None and not SCHEMA_NAME.match(str(schema)):
        raise ProfileError(f"profile {name!r}: {schema_key} {schema!r} is not a lowercase PostgreSQL name")
    return with_schema(str(url), schema) if schema else str(url)


def _refuse_inline_secrets(name: str, table: dict[str, Any], settings: Settings) -> None:
    """A secret the profile gives as a value (not a reference) is refused, wherever it is."""
    for key in set(table) - PROFILE_KEYS - set(SHARED_URLS):  # the URLs: their passwords were checked
        for where in _inline_secrets(getattr(settings, key), key):
            raise ProfileError(f"profile {name!r}: {where} is a secret written into the profiles file; name it "
                              'by reference instead: { env = "VARIABLE" } or { prefect_secret = "block-name" }')


def _inline_secrets(value: object, where: str) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield where
    elif isinstance(value, BaseModel):
        for field in type(value).model_fields:
            yield from _inline_secrets(getattr(value, field), f"{where}.{field}")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _inline_secrets(item, f"{where}.{key}")
    elif isinstance(value, list):
        for number, item in enumerate(value):
            yield from _inline_secrets(item, f"{where}[{number}]")


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
