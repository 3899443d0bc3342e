"""Resolve a parent's ERP key to its Procore id, or say why it cannot be.

Three answers, and each is a message the operator can act on:

- the parent is in Procore (the state has its id): the id;
- the parent is in the ERP but not (yet) in Procore, because it failed, is itself blocked or has
  not been synced: ``Blocked``, naming the parent and its own message; the record lands by
  itself in a later run, once the parent does;
- the parent is not in the ERP at all: ``MissingParent`` ("supplier V-778 does not exist in the
  ERP"), a failure outside the record: ordinary runs read it again (``tasks/healing.py``), so
  it lands once the ERP has the parent.

``Blocked`` also says whether the parent failed (or waits under a parent that did, as the state
remembers): such a record waits for an operator, and the run says so.

The Procore → ERP direction asks the other way round (``erp_key``): which ERP record is Procore's
contract 5629…? A Procore record procore-sync never linked to the ERP blocks the record that
refers to it, naming it, until the ERP has it.

Per run, each parent entity's state and ERP keys are read once: a few columns of its state
(``StateStore.parent_states``), its ERP key column alone unless a child copies its values.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from procore_sync.errors import Blocked, InvalidRecord, MissingParent
from procore_sync.records import ErpSource, ParentState, key_of, key_values
from tasks.spec import EntitySpec


class ParentStates(Protocol):
    """A few columns of each parent record's state (``StateStore.parent_states``)."""

    def parent_states(self, entity: str) -> dict[str, ParentState]: ...


class Refs:
    """The ``tasks.spec.References`` a run hands to mapping functions."""

    def __init__(self, store: ParentStates, source: ErpSource, context: dict[str, Any] | None = None) -> None:
        self._store, self._source = store, source
        self._states: dict[str, dict[str, ParentState]] = {}
        self._erp_rows: dict[str, dict[str, dict[str, Any]]] = {}
        self._erp_keys: dict[str, set[str]] = {}
        self._keys_by_id: dict[str, dict[int, str]] = {}
        self.context: dict[str, Any] = dict(context or {})

    def id(self, parent: EntitySpec, key: str | None, what: str | None = None) -> int:
        """The Procore id of ``parent``'s record ``key``; ``what`` names it in messages."""
        label = what or f"{parent.display_name.lower()} {key}"
        if key is None or not str(key).strip():
            raise InvalidRecord(f"{label}: the reference is blank")
        key = str(key).strip()
        state = self.states(parent).get(key)
        if state is not None and state.procore_id:
            return state.procore_id
        if key not in self.erp_keys(parent):
            raise MissingParent(f"{label} does not exist in the ERP")
        named = label if key in label else f"{label} ({parent.name} {key})"
        raise Blocked(f"waiting for {named}: {_why_not_in_procore(state)}", parent_entity=parent.name, parent_key=key,
                      parent_failed=_failed_or_under_failed(state))

    def erp_key(self, parents: tuple[EntitySpec, ...], procore_id: Any, what: str) -> tuple[EntitySpec, str]:
        """Which of ``parents`` holds Procore's record ``procore_id``, and its ERP key."""
        if procore_id is None or str(procore_id).strip() == "":
            raise InvalidRecord(f"{what}: Procore gives no id for it")
        for parent in parents:
            key = self.keys_by_id(parent).get(int(procore_id))
            if key is not None:
                return parent, key
        raise Blocked(
            f"waiting for {what}: it is not in the ERP (it was created in Procore, not by procore-sync); "
            "add it to the ERP or link it, and this record follows",
            parent_entity=parents[0].name,
            parent_key=str(procore_id),
        )

    def keys_by_id(self, parent: EntitySpec) -> dict[int, str]:
        if parent.name not in self._keys_by_id:
            self._keys_by_id[parent.name] = {s.procore_id: k for k, s in self.states(parent).items() if s.procore_id}
        return self._keys_by_id[parent.name]

    def states(self, parent: EntitySpec) -> dict[str, ParentState]:
        if parent.name not in self._states:
            self._states[parent.name] = self._store.parent_states(parent.name)
        return self._states[parent.name]

    def erp_keys(self, parent: EntitySpec) -> AbstractSet[str]:
        """The parent's ERP keys: its rows' where read, else the key column alone (whether a
        parent is in the ERP asks for no more)."""
        if parent.name in self._erp_rows:
            return self._erp_rows[parent.name].keys()
        if parent.name not in self._erp_keys:
            self._erp_keys[parent.name] = key_values(self._source, parent.erp_table, parent.key_field)
        return self._erp_keys[parent.name]

    def erp_rows(self, parent: EntitySpec) -> dict[str, dict[str, Any]]:
        """The parent's ERP rows by key, for the values a child copies (a cost code's name)."""
        if parent.name not in self._erp_rows:
            rows = self._source.read(parent.erp_table)
            self._erp_rows[parent.name] = {key_of(r.data, parent.key_field): r.data for r in rows}
        return self._erp_rows[parent.name]

    def erp_row(self, parent: EntitySpec, key: str | None, what: str | None = None) -> dict[str, Any]:
        row = self.erp_rows(parent).get(str(key or "").strip())
        if row is None:
            # A blank reference is the record's own fault; a key the ERP lacks may be added later.
            error = MissingParent if str(key or "").strip() else InvalidRecord
            raise error(f"{what or parent.display_name.lower() + ' ' + str(key)} does not exist in the ERP")
        return row


def _failed_or_under_failed(state: ParentState | None) -> bool:
    return state is not None and (state.status == "failed" or (state.status == "blocked" and state.parent_failed))


def _why_not_in_procore(state: ParentState | None) -> str:
    if state is None:
        return "not synced to Procore yet"
    if state.status == "failed":
        return f"it failed ({state.message})"
    if state.status == "blocked":
        return f"it is blocked itself ({state.message})"
    return "not in Procore yet"
