"""How a batch of planned writes reaches Procore, one strategy per kind of endpoint.

- ``SyncWriter``: a Sync Action (``updates[]``, upsert by origin_id, per-item errors). Re-sending
  is safe, so the client retries it. ``link_by`` adopts records Procore already has with the
  same value and no origin_id (a project's template cost codes) instead of creating twins.
- ``CreateEachWriter``: one POST per record where Procore has no sync for creation (projects,
  prime contracts). Before creating, it looks the record up by origin_id, and after an
  ambiguous failure it looks again before anything else: never a blind second create.
- ``KeyedBatchWriter``: batch endpoints without origin_id (budget lines, WBS codes) that upsert
  by a natural key; the answer is matched back by that key.
- ``SplitWriter``: one writer for creates and another for updates.

Every writer returns one ``Outcome`` per action; a record Procore refuses is a failed outcome,
never an exception.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol

from connectors.procore import ProcoreClient
from connectors.state import Outcome
from procore_sync.errors import ConnectionLost, Rejected
from tasks.load import done_outcome, failed_outcome, outcome_of, outcomes_by_origin
from tasks.plan import Action
from tasks.spec import EntitySpec


class Writer(Protocol):
    def write(
        self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]
    ) -> list[Outcome]: ...


def _rejected(spec: EntitySpec, action: Action, exc: Rejected) -> Outcome:
    detail = f"{exc.message}: {exc.body}" if exc.body else exc.message
    return failed_outcome(action, f"Procore rejected {spec.display_name.lower()} {action.key}: {detail}")


@dataclasses.dataclass(frozen=True)
class SyncWriter:
    link_by: str | None = None

    def write(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]) -> list[Outcome]:
        if self.link_by:
            actions = self._link_existing(client, spec, scope, actions)
        path, body, params = spec.target.request(scope)
        result = client.sync(path, scope=body, params=params or None, items=[a.item() for a in actions],
                             method=spec.target.method, batch_size=len(actions))
        return outcomes_by_origin(spec, actions, result)

    def _link_existing(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any],
                       actions: Sequence[Action]) -> list[Action]:
        creates = [a for a in actions if a.kind == "create"]
        if not creates:
            return list(actions)
        field = self.link_by
        existing = {
            record.get(field): record
            for record in client.paginate(spec.list_path.format(**scope), {k: scope[k] for k in spec.list_scope})
            if not record.get("origin_id")
        }
        return [self._adopt(spec, a, existing.get((a.payload or {}).get(field))) if a.kind == "create" else a
                for a in actions]

    def _adopt(self, spec: EntitySpec, action: Action, record: dict | None) -> Action:
        if record is None:
            return action
        note = (f"pre-existing {spec.display_name.lower()} {record.get(self.link_by)} was already in "
                "Procore: linked to it, not created")
        return dataclasses.replace(action, procore_id=int(record["id"]), warnings=(*action.warnings, note))


@dataclasses.dataclass(frozen=True)
class CreateEachWriter:
    create_path: str
    update_path: str
    wrapper: str

    def write(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]) -> list[Outcome]:
        return [self._one(client, spec, scope, action) for action in actions]

    def _one(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], action: Action) -> Outcome:
        try:
            entity = self._upsert(client, spec, scope, action)
        except Rejected as exc:
            return _rejected(spec, action, exc)
        return outcome_of(spec, action, entity, None)

    def _upsert(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], action: Action) -> dict:
        known = action.procore_id or self._find(client, spec, scope, action.key)
        if known:
            return self._send(client, spec, "PATCH", self.update_path.format(id=known, **scope), scope, action)
        try:
            return self._send(client, spec, "POST", self.create_path.format(**scope), scope, action)
        except ConnectionLost:
            # The create may have landed before the answer was lost: look, never create twice.
            found = self._find(client, spec, scope, action.key)
            if found is None:
                raise
            return {"id": found}

    def _find(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], key: str) -> int | None:
        params = {k: scope[k] for k in spec.list_scope} | {"filters[origin_id]": spec.origin_id(key)}
        for record in client.paginate(spec.list_path.format(**scope), params):
            if record.get("origin_id") == spec.origin_id(key):
                return int(record["id"])
        return None

    def _send(self, client: ProcoreClient, spec: EntitySpec, method: str, path: str,
              scope: dict[str, Any], action: Action) -> dict:
        body = {k: scope[k] for k in spec.target.body_scope}
        return client.request(method, path, json={**body, self.wrapper: dict(action.payload or {})}).json()


@dataclasses.dataclass(frozen=True)
class KeyedBatchWriter:
    match: Callable[[dict[str, Any]], Hashable]

    def write(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]) -> list[Outcome]:
        path, body, params = spec.target.request(scope)
        items = [a.item() for a in actions]
        try:
            answer = client.request(spec.target.method, path, params=params or None,
                                    json={**body, spec.target.items_key: items}).json()
        except Rejected as exc:
            return [_rejected(spec, action, exc) for action in actions]
        entities = answer if isinstance(answer, list) else answer.get("entities", [])
        landed = {self.match(entity): entity for entity in entities}
        return [outcome_of(spec, a, landed.get(self.match(a.payload or {})), None) for a in actions]


@dataclasses.dataclass(frozen=True)
class SplitWriter:
    create: Writer
    update: Writer

    def write(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]) -> list[Outcome]:
        creates = [a for a in actions if a.kind == "create"]
        updates = [a for a in actions if a.kind != "create"]
        outcomes = self.create.write(client, spec, scope, creates) if creates else []
        return outcomes + (self.update.write(client, spec, scope, updates) if updates else [])
