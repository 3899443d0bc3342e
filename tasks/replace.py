"""Replace mode, planned: what an upload no longer has is deactivated in Procore, never deleted.

An upload of CSV templates is the whole truth for its table (``connectors.sources``), so the
records synced before that it lacks have left the system of record. This pure function turns
(the upload's keys, its broken lines, the state rows) into deactivation actions, within three
rules an operator relies on:

- an upload with broken lines (a wrong cell count, a quote left open that swallows the lines
  after it, a row without a key) deactivates nothing: what it lacks cannot be told;
- more than the safety share of the table's synced records missing refuses the whole upload
  (``UploadRefused``: nothing is written) unless the run is forced;
- an entity Procore cannot deactivate reports each missing record with a warning instead.

A deactivated record keeps the hash ``DEACTIVATED_HASH``, so a later upload that has it again
differs from it and reactivates it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from procore_sync.errors import UploadRefused
from procore_sync.records import RecordState
from tasks.actions import Action
from tasks.spec import DEACTIVATED_HASH, EntitySpec


@dataclass(frozen=True)
class Replacement:
    actions: list[Action]
    note: str | None = None  # what the run's summary says when nothing was deactivated on purpose


def plan_deactivations(spec: EntitySpec, present: Collection[str], broken_lines: Sequence[int],
                       states: Mapping[str, RecordState], *, max_share: float, force: bool) -> Replacement:
    table = f"{spec.erp_table}.csv"
    active = {key: state for key, state in states.items()
              if state.procore_id and state.payload_hash not in (None, DEACTIVATED_HASH)}
    missing = sorted(set(active) - set(present))
    if missing and broken_lines:
        lines = ", ".join(map(str, broken_lines[:10]))
        return Replacement([], f"{len(missing)} record(s) missing from the upload were not deactivated: line(s) "
                               f"{lines} of {table} are broken or have no {spec.key_field}; fix them and upload again")
    share = len(missing) / len(active) if active else 0.0
    if share > max_share and not force:
        raise UploadRefused(
            f"the upload of {table} would deactivate {len(missing)} of {len(active)} "
            f"{spec.display_name.lower()} in Procore ({share:.0%}), more than the {max_share:.0%} "
            "safety share; nothing was synced",
            entity=spec.name,
        )
    return Replacement([_deactivation(spec, key, active[key], table) for key in missing])


def _deactivation(spec: EntitySpec, key: str, state: RecordState, table: str) -> Action:
    if spec.deactivate is None:
        message = (f"missing from the upload of {table}; Procore has no way to deactivate "
                   f"{spec.display_name.lower()}, so it stays as it is")
        return Action("skip", key=key, procore_id=state.procore_id, warnings=(message,))
    payload = spec.deactivate | ({"origin_id": spec.origin_id(key)} if spec.uses_origin_id else {})
    return Action("update", key=key, payload=payload, payload_hash=DEACTIVATED_HASH, procore_id=state.procore_id,
                  message=f"deactivated: missing from the upload of {table}")
