"""How a batch of planned writes reaches Procore, one strategy per kind of endpoint.

- ``SyncWriter``: a Sync Action (``updates[]``, upsert by origin_id, per-item errors). Re-sending
  is safe, so the client retries it. ``link_by`` adopts records Procore already has with the
  same value and no origin_id (a project's template cost codes) instead of creating twins.
- ``CreateEachWriter``: one POST per record where Procore has no sync for creation (projects,
  prime contracts). Before creating, it lists the scope's records once to find ones already
  carrying our origin_id, and after a 5xx or a lost answer it looks again before each retry
  (``ProcoreClient.create``): never a blind second create. A record whose retries are spent
  fails alone, not refused; the others land.
- ``KeyedBatchWriter``: batch endpoints without origin_id (budget lines, WBS codes) that upsert
  by a natural key; the answer (entities and per-entry errors) is matched back by that key. A
  batch refused as a whole, naming no line, is halved until the bad lines stand alone.
- ``SplitWriter``: one writer for creates and another for updates.

Every writer returns one ``Outcome`` per action; a record Procore refuses is a failed outcome,
never an exception, and keeps the refused payload's hash (``tasks/outcomes.py``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

from connectors import paging
from connectors.paging import Page
from connectors.procore import ProcoreClient, SyncResult
from connectors.procore_batches import parse_sync_response
from procore_sync.errors import (Conflict, ConnectionLost, DeletedInProcore, NotFound, Rejected, ServerError,
                                 SyncError)
from procore_sync.records import Outcome
from tasks.actions import Action
from tasks.compare import same
from tasks.outcomes import failed_outcome, outcome_of, rejected_outcome
from tasks.spec import DELETED, EntitySpec, partly_sent

log = logging.getLogger("tasks.writers")


def outcomes_by_origin(spec: EntitySpec, actions: Sequence[Action], result: SyncResult) -> list[Outcome]:
    """Match a Sync Action's entities and per-item errors back to records by origin_id."""
    landed = {spec.key_of_origin(origin): entity for origin, entity in result.by_origin_id().items()}
    rejected = {spec.key_of_origin(e.origin_id): e.text for e in result.errors if e.origin_id}
    return [outcome_of(spec, action, landed.get(action.key), rejected.get(action.key)) for action in actions]


def _batched(count: int) -> int:
    return -(-count // 1000)


def _rejected(spec: EntitySpec, action: Action, exc: SyncError) -> Outcome:
    """Procore refused a request that held this record alone: the refused hash is kept."""
    detail = f"{exc.message}: {exc.body}" if exc.body else exc.message
    return rejected_outcome(spec, action, detail)


# A write to one record that Procore did not take for reasons outside it, retries spent.
NOT_TAKEN = (ServerError, ConnectionLost)


def _not_taken(spec: EntitySpec, action: Action, exc: SyncError) -> Outcome:
    """The record fails alone and is not refused: nothing in it was at fault."""
    message = (f"Procore did not take {spec.display_name.lower()} {action.key}: {exc.message}; "
               "not a refusal of the record: a later run sends it again")
    return failed_outcome(action, message)


# A 404 or 410 on a request addressed to one record's own id: it was deleted in Procore.
GONE = (NotFound, DeletedInProcore)


def _deleted(spec: EntitySpec, action: Action, procore_id: Any, exc: SyncError) -> Outcome:
    """That record fails (kept as refused: an unchanged payload is not sent again) and the run
    goes on; only the configuration check's 401/403/404 stop a run."""
    message = (f"{DELETED}{spec.display_name.lower()} {action.key} (Procore id {procore_id}) is no longer there "
               f"({exc.message}); to create it again, run resync-failed for it with recreate_deleted ticked")
    return failed_outcome(action, message, refused=True)


@dataclasses.dataclass(frozen=True)
class SyncWriter:
    link_by: str | None = None

    def fewest_calls(self, creates: int, updates: int) -> int:
        return _batched(creates + updates)

    def write(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]) -> list[Outcome]:
        if self.link_by:
            actions = self._link_existing(client, spec, scope, actions)
        path, body, params = spec.target.request(scope)
        result = client.sync(path, scope=body, params=params or None, items=[a.item(spec.sends_id) for a in actions],
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

    def fewest_calls(self, creates: int, updates: int) -> int:
        return creates + updates

    def write(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]) -> list[Outcome]:
        # One listing per batch tells which records already carry our origin_id (a create that
        # landed before its answer was lost): those are updated, never created twice.
        known = self._known(client, spec, scope) if any(a.kind == "create" for a in actions) else {}
        return [self._one(client, spec, scope, action, known) for action in actions]

    def _one(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], action: Action,
             known: dict[str, int]) -> Outcome:
        found = known.get(spec.origin_id(action.key))
        try:
            entity = self._upsert(client, spec, scope, action, found)
        except Rejected as exc:
            return _rejected(spec, action, exc)
        except NOT_TAKEN as exc:
            return _not_taken(spec, action, exc)
        except GONE as exc:
            if not (action.procore_id or found):
                raise  # not an update of one record: a wrong scope or company stops the run
            return _deleted(spec, action, action.procore_id or found, exc)
        return outcome_of(spec, action, entity, None)

    def _upsert(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], action: Action,
                found: int | None) -> dict:
        target_id = action.procore_id or found
        if target_id:
            return self._send(client, spec, "PATCH", self.update_path.format(id=target_id, **scope), scope, action)

        def landed() -> dict | None:
            # A create that failed unclearly may have landed: look, never create twice.
            found_id = self._known(client, spec, scope).get(spec.origin_id(action.key))
            return None if found_id is None else {"id": found_id}

        return client.create(self.create_path.format(**scope), json=self._body(spec, scope, action), look_up=landed)

    def _known(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any]) -> dict[str, int]:
        params = {k: scope[k] for k in spec.list_scope}
        records = client.paginate(spec.list_path.format(**scope), params)
        return {r["origin_id"]: int(r["id"]) for r in records if r.get("origin_id")}

    def _send(self, client: ProcoreClient, spec: EntitySpec, method: str, path: str,
              scope: dict[str, Any], action: Action) -> dict:
        return client.request(method, path, json=self._body(spec, scope, action)).json()

    def _body(self, spec: EntitySpec, scope: dict[str, Any], action: Action) -> dict[str, Any]:
        body = {k: scope[k] for k in spec.target.body_scope}
        return {**body, self.wrapper: dict(action.payload or {})}


@dataclasses.dataclass(frozen=True)
class KeyedBatchWriter:
    match: Callable[[dict[str, Any]], Hashable]

    def fewest_calls(self, creates: int, updates: int) -> int:
        return _batched(creates + updates)

    def write(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]) -> list[Outcome]:
        try:
            return self._send(client, spec, scope, actions)
        except Rejected as exc:
            if len(actions) < 2:
                return [_rejected(spec, action, exc) for action in actions]
            calls = client.stats.api_calls
            outcomes = self._isolate(client, spec, scope, actions, exc)
            client.stats.split_calls += client.stats.api_calls - calls
            return outcomes

    def _isolate(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action],
                 exc: Rejected) -> list[Outcome]:
        """Procore refused the whole batch without naming a line (budget_line_items/sync answers
        one 400/422 for the call): each half is sent on its own, and a refused half halved again,
        until the bad lines stand alone (refused) and the good ones land, in this run. One bad
        line in 1,000 costs about 20 calls."""
        if len(actions) == 1:
            return [_rejected(spec, actions[0], exc)]
        log.info("%s: Procore refused a batch of %d without naming a line (%s); sending it in halves",
                 spec.name, len(actions), exc.message)
        half = len(actions) // 2
        return [outcome for part in (actions[:half], actions[half:])
                for outcome in self._half(client, spec, scope, part)]

    def _half(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any],
              actions: Sequence[Action]) -> list[Outcome]:
        try:
            return self._send(client, spec, scope, actions)
        except Rejected as exc:
            return self._isolate(client, spec, scope, actions, exc)

    def _send(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any],
              actions: Sequence[Action]) -> list[Outcome]:
        path, body, params = spec.target.request(scope)
        items = [a.item(spec.sends_id) for a in actions]
        answer = client.request(spec.target.method, path, params=params or None,
                                json={**body, spec.target.items_key: items}).json()
        # A plain list (budget lines) or {"entities", "errors"} (WBS bulk_create echoes each
        # refused entry with its errors): both matched back by the natural key.
        result = parse_sync_response(answer)
        landed = {self.match(entity): entity for entity in result.entities}
        refused = {self.match(error.item): error.text for error in result.errors}
        keys = [self.match(a.payload or {}) for a in actions]
        return [outcome_of(spec, a, landed.get(key), refused.get(key)) for a, key in zip(actions, keys)]


@dataclasses.dataclass(frozen=True)
class SplitWriter:
    create: Writer
    update: Writer

    def fewest_calls(self, creates: int, updates: int) -> int:
        return self.create.fewest_calls(creates, 0) + self.update.fewest_calls(0, updates)

    def write(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]) -> list[Outcome]:
        creates = [a for a in actions if a.kind == "create"]
        updates = [a for a in actions if a.kind != "create"]
        outcomes = self.create.write(client, spec, scope, creates) if creates else []
        return outcomes + (self.update.write(client, spec, scope, updates) if updates else [])


# Resource Planning (workforce-planning v2) pages are 0-based and hold at most 400 items.
PLANNING_PAGE = 400


@dataclasses.dataclass(frozen=True)
class PlanningWriter:
    """Resource Planning's people and projects: one POST per record, to the collection to create
    and to the item to update (v2 updates with POST). They have no origin_id, so records are
    matched by a natural key (``match``: employee_number, project_number): before creating, the
    collection is listed once and a record already there is updated, never created twice.
    ``update_fields`` is what the update operation takes; ``update_needs`` are fields it requires,
    filled from Procore's record when the payload lacks them (a deactivation sends only status).

    A field the update cannot carry (a project's end date) is compared with Resource Planning's
    record, read in the same listing; where they differ the record lands with a warning naming
    the field and a payload hash marked ``partly_sent``, never as if all of it were pushed."""

    collection: str
    match: str
    update_fields: tuple[str, ...]
    update_needs: tuple[str, ...] = ()

    def fewest_calls(self, creates: int, updates: int) -> int:
        return creates + updates

    def write(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], actions: Sequence[Action]) -> list[Outcome]:
        base = f"/rest/v1.0/workforce-planning/v2/companies/{scope['company_id']}/{self.collection}"
        listed = any(not a.procore_id or self._not_carried(a.payload) for a in actions)
        current = self._records(client, spec, scope, base) if listed else {}
        known = {str(record[self.match]): record_id for record_id, record in current.items() if record.get(self.match)}
        return [self._one(client, spec, base, action, known, current) for action in actions]

    def _records(self, client: ProcoreClient, spec: EntitySpec, scope: dict[str, Any], base: str) -> dict[str, dict]:
        """Every record of the collection by id, as sent (the spec's lister shows dates as sent)."""
        records = spec.lister(client, scope) if spec.lister else planning_pages(client, base)
        return {str(record["id"]): record for record in records}

    def _one(self, client: ProcoreClient, spec: EntitySpec, base: str, action: Action,
             known: dict[str, str], current: dict[str, dict]) -> Outcome:
        payload = dict(action.payload or {})
        target = action.procore_id or known.get(str(payload.get(self.match) or ""))
        try:
            answer = self._update(client, f"{base}/{target}", payload) if target else \
                self._create(client, base, payload)
        except (Rejected, Conflict) as exc:
            # 409 here means another record holds this one's employee number, e-mail or project
            # number: a refusal of this record, not a passing state (the client does not resend
            # a delivered POST), so it fails alone and the others go on.
            return _rejected(spec, action, exc)
        except NOT_TAKEN as exc:
            return _not_taken(spec, action, exc)
        except GONE as exc:
            if not target:
                raise  # not an update of one record: a wrong company stops the run
            return _deleted(spec, action, target, exc)
        # A create answers {"id": ...} for people and [{"id": ...}] for projects.
        created = (answer[0] if isinstance(answer, list) and answer else answer) or {}
        procore_id = target or created.get("id")
        if target:
            action = self._partly_sent(action, current.get(str(target)))
        return outcome_of(spec, action, {"id": procore_id} if procore_id else None, None)

    def _not_carried(self, payload: dict[str, Any] | None) -> list[str]:
        return [name for name in payload or {} if name not in self.update_fields]

    def _partly_sent(self, action: Action, record: dict[str, Any] | None) -> Action:
        """The update as it landed: fields it could not carry that Resource Planning holds
        otherwise are named in a warning, and the hash says the payload was only partly sent."""
        payload = action.payload or {}
        unsent = [name for name in self._not_carried(payload)
                  if record is None or not same(payload[name], record.get(name))]
        if not unsent or action.payload_hash is None:
            return action
        held = "" if record is None else " (Resource Planning has " + ", ".join(
            f"{name} {record.get(name)}" for name in unsent) + ")"
        warning = (f"not sent: {', '.join(f'{name} {payload[name]}' for name in unsent)}{held}; "
                   f"Resource Planning's update takes only {', '.join(self.update_fields)}: change it there by hand")
        return dataclasses.replace(action, warnings=(*action.warnings, warning),
                                   payload_hash=partly_sent(action.payload_hash))

    def _create(self, client: ProcoreClient, base: str, payload: dict[str, Any]) -> Any:
        """A POST retried after a 5xx or a lost answer, once the collection shows it did not land."""
        number = str(payload.get(self.match) or "")

        def landed() -> dict | None:
            if not number:
                return None
            found = (record for record in planning_pages(client, base) if str(record.get(self.match)) == number)
            return next(({"id": str(record["id"])} for record in found), None)

        return client.create(base, json=payload, look_up=landed)

    def _update(self, client: ProcoreClient, path: str, payload: dict[str, Any]) -> dict:
        body = {k: v for k, v in payload.items() if k in self.update_fields}
        missing = [name for name in self.update_needs if name not in body]
        if missing:
            current = client.get(path)
            body |= {name: current.get(name) for name in missing}
        return client.request("POST", path, json=body).json()


def planning_pages(client: ProcoreClient, path: str) -> Iterator[dict[str, Any]]:
    """Every record of a Resource Planning collection: 0-based pages of at most 400, with no
    total stated, so a short page is the last."""
    return paging.numbered(lambda page: Page(client.get(path, {"page": page}), size=PLANNING_PAGE),
                           first=0, short_is_last=True)
