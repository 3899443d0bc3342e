"""The wrong Procore is refused: a state belongs to one Procore environment, company and ERP.

The state's Procore ids, hashes and cursors describe one company of one Procore environment as
fed by one ERP. Against another pairing (a test ERP with production Procore, a state folder
copied to a test install) a run would update other records by id, or skip records that are not
there. So the first run that passes the company check records the pairing it ran with (after
that check, so a mistyped company id is never recorded), and every run compares right after it,
before reading the ERP or writing anything, stopping with ``WrongPairing`` (naming both) until
the operator pairs the state with the new one: ``procore-sync state pair``, recorded in the
history. A state from before this check is paired by its next run.

What identifies each part:

- **Procore**: the API base URL (``Settings.api_base``). A local sandbox's is kept without its
  port: a sandbox starts on whatever port is free (tests, the demo's ``--sandbox-port``), so a
  port says nothing about which Procore it is, while the host does; and no production data is
  at stake between two local sandboxes.
- **company**: the settings' company id.
- **ERP**: where every table is read from, as the sources describe themselves
  (``SourceSet.describe()``: the ERP file, the queries' file, the API, each table's drop).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from connectors.erp import ErpSource
from connectors.state import Pairing, PairingRow, StateStore
from procore_sync.errors import ConfigError
from procore_sync.settings import ProcoreEnvironment, Settings

FIRST_RUN = "first run"
BY_OPERATOR = "paired by the operator"


class WrongPairing(ConfigError):
    hint = ("point the settings back at the Procore, company and ERP the state belongs to; or, if this "
            "state really is to serve these from now on, run `procore-sync state pair` (recorded in the "
            "history) and run again.")


def procore_of(settings: Settings) -> str:
    if settings.environment is ProcoreEnvironment.local:
        url = urlsplit(settings.api_base)
        return f"{url.scheme}://{url.hostname} (local sandbox, any port)"
    return settings.api_base


def pairing_of(settings: Settings, source: ErpSource) -> Pairing:
    return Pairing(procore_of(settings), settings.company_id, source.describe())


def check_pairing(store: StateStore, settings: Settings, source: ErpSource) -> None:
    """Before a run reads the ERP or writes: the state's pairing is this run's (the first run
    records it)."""
    current = pairing_of(settings, source)
    require(store, store.pair(current, how=FIRST_RUN, only_if_unpaired=True), current)


def require(store: StateStore, recorded: PairingRow, current: Pairing) -> None:
    """``WrongPairing`` unless ``current`` is the pairing the state records."""
    if recorded.pairing != current:
        raise WrongPairing(
            f"the state {store.location} is paired with {recorded.pairing.describe()} "
            f"({recorded.how}, {recorded.at:%Y-%m-%d %H:%M} UTC); this run is configured for "
            f"{current.describe()}. Nothing was written."
        )


def pair(store: StateStore, settings: Settings, source: ErpSource) -> tuple[PairingRow | None, PairingRow]:
    """The operator's explicit pairing: the state serves these settings from now on. Returns the
    pairing before and the one now in force."""
    before = store.pairing()
    return before, store.pair(pairing_of(settings, source), how=BY_OPERATOR)
