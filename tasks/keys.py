"""Natural keys: two ERP records must never become one Procore record.

Where Procore keeps no origin_id (budget lines, WBS codes, Resource Planning), a writer matches
Procore's records by what they are: a WBS code, a segment combination, a number (the entity's
``NaturalKey``). Two ERP records sharing one would land on the same Procore record, the last one
winning, each later edit overwriting the other. Two checks keep that from passing unseen:

- in the run (``natural_duplicates``, at mapping): every record sharing a natural key fails,
  naming the others, as duplicate ERP keys do; nothing of them is sent;
- against the state (``collisions``, on Procore's answer): a record the cursor did not read may
  hold the Procore record already. An answer that gives one record the Procore id another ERP
  record holds means Procore merged them: both fail, naming each other. The newcomer keeps no
  Procore id (so it never updates the other's record by id); the holder keeps its id but not its
  claim to be in Procore as pushed, so resyncing it once the ERP is fixed puts its values back.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol

from procore_sync.records import ErpSource, Outcome, ProcoreId, RecordState
from tasks.actions import MappedRecord
from tasks.spec import EntitySpec, NaturalKey


class RecordStates(Protocol):
    """The state of an entity's records (``StateStore.record_states``)."""

    def record_states(self, entity: str) -> Mapping[str, RecordState]: ...


def natural_duplicates(spec: EntitySpec, records: list[MappedRecord]) -> list[MappedRecord]:
    """``records`` with every one that shares its natural key with another failed."""
    natural = spec.natural_key
    if natural is None:
        return records
    sharing: dict[Hashable, list[str]] = defaultdict(list)
    for record in records:
        if record.ok and record.payload is not None:
            sharing[natural.of(record.payload, record.scope)].append(record.key)
    others = {key: [k for k in keys if k != key] for keys in sharing.values() if len(keys) > 1 for key in keys}
    return [_shared(spec, natural, record, others[record.key]) if record.key in others and record.ok else record
            for record in records]


def _shared(spec: EntitySpec, natural: NaturalKey, record: MappedRecord, others: list[str]) -> MappedRecord:
    message = (f"same {natural.name} as {spec.key_field} {', '.join(others)}: {natural.rule}, so they would "
               f"become one Procore record and each edit would overwrite the other; make them one record in "
               f"the ERP or give each its own {natural.name}, then resync")
    # Outside the record: fixing one of the others releases it, so ordinary runs read it again.
    return dataclasses.replace(record, payload=None, payload_hash=None, warnings=[], error=message, outside=True)


def collisions(spec: EntitySpec, outcomes: Sequence[Outcome], store: RecordStates, source: ErpSource) -> list[Outcome]:
    """``outcomes`` with every write Procore answered with another ERP record's Procore id failed,
    plus a failed outcome for each such holder (still in the ERP), naming each other."""
    landed = {o.procore_id: o for o in outcomes if o.action in ("create", "update") and o.procore_id is not None}
    if spec.natural_key is None or not landed:
        return list(outcomes)
    held = {state.procore_id: key for key, state in store.record_states(spec.name).items()
            if state.procore_id in landed and key != landed[state.procore_id].key}
    if held:  # rare: only then is the ERP read, since a record gone from it holds nothing
        in_erp = {str(row.data.get(spec.key_field, "")).strip() for row in source.read(spec.erp_table)}
        held = {procore_id: key for procore_id, key in held.items() if key in in_erp}
    if not held:
        return list(outcomes)
    merged = [_newcomer(spec, o, held[o.procore_id]) if o.procore_id in held and o.action != "fail" else o
              for o in outcomes]
    return merged + [_holder(spec, key, procore_id, landed[procore_id].key) for procore_id, key in held.items()]


def _merged_by(natural: NaturalKey) -> str:
    return f"{natural.rule}, so Procore matched them by {natural.name}"


def _newcomer(spec: EntitySpec, outcome: Outcome, holder: str) -> Outcome:
    natural = spec.natural_key
    assert natural is not None
    message = (f"Procore answered with its record {outcome.procore_id}, which {spec.key_field} {holder} holds "
               f"({_merged_by(natural)}): that record now has {outcome.key}'s values; make them one record in "
               f"the ERP or give each its own {natural.name}, then resync {holder}")
    return Outcome(outcome.key, "fail", "failed", message=message, source_updated_at=outcome.source_updated_at,
                   outside=True)


def _holder(spec: EntitySpec, key: str, procore_id: ProcoreId, newcomer: str) -> Outcome:
    natural = spec.natural_key
    assert natural is not None
    message = (f"its Procore record {procore_id} was overwritten by {spec.key_field} {newcomer} "
               f"({_merged_by(natural)}); make them one record in the ERP, then resync {key} to put its "
               "values back")
    return Outcome(key, "fail", "failed", procore_id=procore_id, message=message, outside=True)
