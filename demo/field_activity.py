"""What the field does in Procore between two syncs, simulated through Procore's public API.

Procore → ERP entities (change orders, the modified budget) only have something to read once
people work in Procore. ``simulate_field_activity`` plays one round of that work with our own
``ProcoreClient``, never touching the sandbox's internals, so it runs against any Procore:

- it picks up to ``MAX_PROJECTS`` projects holding contracts the ERP sent (an ``origin_id`` on a
  subcontract, purchase order or prime contract); in each one it
- creates two commitment change orders on ERP-linked commitments, each with two lines on the
  WBS codes of the commitment's lines (linked through ``commitment_line_item_id``), one prime
  change order with two lines, and one budget change holding a transfer (two adjustment lines,
  one adjustment number, opposite amounts);
- deletes one draft change order of an earlier round (none in a first round);
- edits the title and one line amount of another change order of an earlier round (of this
  round's first one when there is none) and the amounts of a budget change's transfer (again an
  earlier round's when there is one);
- voids a third change order of an earlier round, else this round's prime change order;
- once per company, creates a subcontract without ``origin_id`` through the sync action (a
  contract the field made, unknown to the ERP) with one change order on it.

Records it creates are recognisable by title ("Field r<round> ..."). Amounts and wordings come
from a generator seeded by ``seed`` and the round, and projects, contracts, lines and WBS codes
are taken in the order of their numbers and origin_ids, never of their ids (ids only say in which
order a Procore made them), so a round replayed on the same data does the same things, in this
Procore or another (the chaos run plays it in two). ``round=None`` means the round after the highest one found in Procore.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.procore import ProcoreClient

MAX_PROJECTS = 3
COMMITMENTS = ("work_order_contracts", "purchase_order_contracts")
COMMITMENT, PRIME = "commitment_change_orders", "prime_change_orders"
ORPHAN_TITLE = "Field-created subcontract (not in the ERP)"
ORPHAN_NUMBER = "FIELD-1"
MARK = re.compile(r"^Field r(\d+) ")
TOPICS = ("Extra excavation", "Rebar change", "Owner upgrade", "Design revision", "Site condition", "Rework")
ENDED = ("void", "approved", "rejected")


@dataclass(frozen=True)
class ChangeOrderActions:
    """Procore ids of the change orders of one kind, per action."""

    created: tuple[int, ...] = ()
    edited: tuple[int, ...] = ()
    voided: tuple[int, ...] = ()
    deleted: tuple[int, ...] = ()


@dataclass(frozen=True)
class FieldActivity:
    round: int
    projects: tuple[int, ...]
    commitment: ChangeOrderActions
    prime: ChangeOrderActions
    budget_changes_created: tuple[int, ...]
    budget_changes_edited: tuple[int, ...]
    orphan_contract_id: int | None = None
    orphan_change_order_id: int | None = None

    def describe(self) -> str:
        kinds = (self.commitment, self.prime)
        counts = {name: sum(len(getattr(kind, name)) for kind in kinds) for name in ACTIONS}
        orphan = ", 1 subcontract made outside the ERP (1 change order)" if self.orphan_contract_id else ""
        return (
            f"round {self.round} in {len(self.projects)} project(s): change orders "
            f"{counts['created']} created ({len(self.commitment.created)} commitment, "
            f"{len(self.prime.created)} prime), "
            f"{counts['edited']} edited, {counts['voided']} voided, {counts['deleted']} deleted; "
            f"budget changes {len(self.budget_changes_created)} created, "
            f"{len(self.budget_changes_edited)} edited{orphan}"
        )


ACTIONS = ("created", "edited", "voided", "deleted")


def _actions() -> dict[str, list[int]]:
    return {name: [] for name in ACTIONS}


Contract = tuple[dict[str, Any], list[dict[str, Any]]]  # (contract, its lines that name a WBS code)


@dataclass
class _Project:
    """One project as the field sees it: its ERP-linked contracts and what earlier rounds left."""

    id: int
    commitments: list[Contract]
    primes: list[Contract]
    wbs_code_ids: list[int]
    commitment_change_orders: list[dict[str, Any]]
    budget_changes: list[dict[str, Any]]
    orphan: dict[str, Any] | None


def _path(project_id: int, collection: str, *rest: object) -> str:
    return "/".join([f"/rest/v1.0/projects/{project_id}/{collection}", *map(str, rest)])


def _by_number(*fields: str) -> Callable[[dict[str, Any]], tuple[str, ...]]:
    """A sort key by what names a record in the ERP (its id last, for records without)."""
    return lambda row: (*(str(row.get(name) or "") for name in fields), f"{row['id']:>40}")


def _lines(client: ProcoreClient, kind: str, contract_id: int, project_id: int) -> list[dict[str, Any]]:
    found = client.paginate(f"/rest/v1.0/{kind}/{contract_id}/line_items", {"project_id": project_id})
    return sorted((line for line in found if line.get("wbs_code")), key=_by_number("origin_id"))


def _linked(
    client: ProcoreClient, kind: str, contracts: list[dict[str, Any]], project_id: int
) -> list[Contract]:
    """The contracts the ERP sent (an origin_id) that have lines, with those lines."""
    linked = sorted((c for c in contracts if c.get("origin_id")), key=_by_number("origin_id"))
    pairs = [(c, _lines(client, kind, c["id"], project_id)) for c in linked]
    return [(contract, lines) for contract, lines in pairs if lines]


def _read_project(client: ProcoreClient, project_id: int) -> _Project | None:
    """The project, or None when the ERP sent it no commitment with lines."""
    params = {"project_id": project_id}
    listed = {kind: list(client.paginate(f"/rest/v1.0/{kind}", params)) for kind in COMMITMENTS}
    commitments = [pair for kind in COMMITMENTS for pair in _linked(client, kind, listed[kind], project_id)]
    if not commitments:
        return None
    primes = list(client.paginate("/rest/v1.0/prime_contracts", params))
    codes = client.paginate(f"/rest/v1.0/projects/{project_id}/work_breakdown_structure/wbs_codes")
    return _Project(
        id=project_id,
        commitments=commitments,
        primes=_linked(client, "prime_contracts", primes, project_id),
        wbs_code_ids=[code["id"] for code in sorted(codes, key=_by_number("flat_code"))],
        commitment_change_orders=client.get(_path(project_id, COMMITMENT)) or [],
        budget_changes=(client.get(_path(project_id, "budget_changes")) or {}).get("data", []),
        orphan=next((c for c in listed["work_order_contracts"] if c.get("title") == ORPHAN_TITLE), None),
    )


class _Field:
    """One round of field work: writes through the client and tallies what it did."""

    def __init__(self, client: ProcoreClient, company_id: int, rng: random.Random, round_: int) -> None:
        self.client, self.company_id, self.rng, self.round = client, company_id, rng, round_
        self.commitment, self.prime = _actions(), _actions()
        self.budget_changes_created: list[int] = []
        self.budget_changes_edited: list[int] = []
        self.orphan_ids: tuple[int, int] | None = None
        self.titles: dict[int, str] = {}  # the change orders this round made

    def v2_lines(self, project_id: int, collection: str, change_order_id: int) -> str:
        base = f"/rest/v2.0/companies/{self.company_id}/projects/{project_id}"
        return f"{base}/{collection}/{change_order_id}/line_items"

    def amount(self) -> str:
        return f"{self.rng.randint(4, 400) * 25}.00"

    def title(self, label: str) -> str:
        return f"Field r{self.round} {label}: {self.rng.choice(TOPICS)}"

    # --- creating --------------------------------------------------------------------------

    def change_order(
        self, project_id: int, collection: str, contract_id: int, title: str, lines: list[dict[str, Any]]
    ) -> int:
        body = {"change_order": {"contract_id": contract_id, "title": title, "status": "draft"}}
        created = self.client.request("POST", _path(project_id, collection), json=body).json()
        for line in lines:
            self.client.request("POST", self.v2_lines(project_id, collection, created["id"]), json=line)
        change_order_id: int = created["id"]
        self.titles[change_order_id] = title
        return change_order_id

    def commitment_change_order(self, project: _Project, index: int) -> int:
        contract, contract_lines = project.commitments[index % len(project.commitments)]
        lines = [
            {
                "wbs_code_id": str(line["wbs_code"]["id"]),
                "commitment_line_item_id": str(line["id"]),
                "amount": self.amount(),
                "description": f"Extra work on {line.get('description') or 'the line'}",
            }
            for line in (contract_lines * 2)[:2]
        ]
        title = self.title(f"#{index + 1}")
        change_order_id = self.change_order(project.id, COMMITMENT, contract["id"], title, lines)
        self.commitment["created"].append(change_order_id)
        return change_order_id

    def prime_change_order(self, project: _Project) -> int | None:
        if not project.primes:
            return None
        contract, contract_lines = project.primes[0]
        lines = [
            {"wbs_code_id": str(line["wbs_code"]["id"]), "amount": self.amount(), "description": "Owner"}
            for line in (contract_lines * 2)[:2]
        ]
        title = self.title("owner")
        change_order_id = self.change_order(project.id, PRIME, contract["id"], title, lines)
        self.prime["created"].append(change_order_id)
        return change_order_id

    def budget_change(self, project: _Project) -> int | None:
        """A transfer: one adjustment, two lines, opposite amounts (two WBS codes when there are)."""
        codes = project.wbs_code_ids
        if not codes:
            return None
        pair = self.rng.sample(codes, 2) if len(codes) > 1 else codes * 2
        moved = float(self.amount())
        items = [
            {"adjustment_number": 1, "wbs_code_id": code, "amount": sign * moved, "type": "budget_change"}
            for code, sign in zip(pair, (-1, 1), strict=True)
        ]
        title = f"Field r{self.round} budget transfer"
        body = {"status": "draft", "title": title, "adjustment_line_items": items}
        created = self.client.request("POST", _path(project.id, "budget_changes"), json=body).json()["data"]
        self.budget_changes_created.append(created["id"])
        budget_change_id: int = created["id"]
        return budget_change_id

    def orphan(self, project: _Project) -> None:
        """A subcontract made in the field: synced without origin_id, then one change order on it."""
        item: dict[str, Any] = {"title": ORPHAN_TITLE, "number": ORPHAN_NUMBER, "status": "Draft"}
        vendor = project.commitments[0][0].get("vendor") or {}
        if vendor.get("id"):
            item["vendor_id"] = vendor["id"]
        scope = {"project_id": project.id}
        result = self.client.sync("/rest/v1.0/work_order_contracts/sync", scope=scope, items=[item])
        contract_id = int(result.entities[0]["id"])
        codes = project.wbs_code_ids[:1]
        lines = [{"wbs_code_id": str(code), "amount": self.amount()} for code in codes]
        title = f"Field r{self.round} orphan: {ORPHAN_TITLE}"
        change_order_id = self.change_order(project.id, COMMITMENT, contract_id, title, lines)
        self.orphan_ids = (contract_id, change_order_id)

    # --- changing --------------------------------------------------------------------------

    def edit_change_order(self, project_id: int, change_order: dict[str, Any]) -> None:
        """A new title, and a new amount on its first line."""
        path = _path(project_id, COMMITMENT, change_order["id"])
        title = f"{change_order.get('title') or ''} (revised r{self.round})"[:255]
        self.client.request("PATCH", path, json={"change_order": {"title": title}})
        lines_path = self.v2_lines(project_id, COMMITMENT, change_order["id"])
        lines = list(self.client.paginate(lines_path, per_page=100))
        if lines:
            self.client.request("PATCH", f"{lines_path}/{lines[0]['id']}", json={"amount": self.amount()})
        self.commitment["edited"].append(change_order["id"])

    def edit_budget_change(self, project_id: int, budget_change_id: int) -> None:
        """New amounts on both lines of the transfer, which stays balanced."""
        path = _path(project_id, "budget_changes", budget_change_id)
        lines = self.client.get(path)["data"]["adjustment_line_items"]
        if len(lines) < 2:
            return
        moved = float(self.amount())
        changes = [{"id": lines[0]["id"], "amount": -moved}, {"id": lines[1]["id"], "amount": moved}]
        self.client.request("PATCH", path, json={"adjustment_line_items": changes})
        self.budget_changes_edited.append(budget_change_id)

    def void(self, project_id: int, collection: str, change_order_id: int) -> None:
        body = {"change_order": {"status": "void"}}
        self.client.request("PATCH", _path(project_id, collection, change_order_id), json=body)
        tally = self.commitment if collection == COMMITMENT else self.prime
        tally["voided"].append(change_order_id)

    def delete(self, project_id: int, change_order_id: int) -> None:
        self.client.request("DELETE", _path(project_id, COMMITMENT, change_order_id))
        self.commitment["deleted"].append(change_order_id)

    # --- one project's round ---------------------------------------------------------------

    def earlier(self, rows: list[dict[str, Any]], project: _Project) -> list[dict[str, Any]]:
        """Records of earlier rounds still open (change orders on the orphan contract aside)."""
        orphan_id = (project.orphan or {}).get("id")
        return [
            row
            for row in rows
            if _round_of(row.get("title")) not in (None, self.round)
            and row.get("status") not in ENDED
            and (orphan_id is None or row.get("contract_id") != orphan_id)
        ]

    def work(self, project: _Project) -> None:
        """Create, then change what earlier rounds left open (the ERP has imported those, so
        the next sync shows an edit, a void and a deletion coming back); a first round edits
        and voids its own new records and deletes nothing."""
        earlier = self.earlier(project.commitment_change_orders, project)
        first = self.commitment_change_order(project, 0)
        self.commitment_change_order(project, 1)
        prime = self.prime_change_order(project)
        transfer = self.budget_change(project)
        others = list(earlier)
        if others:
            self.delete(project.id, others.pop(self.rng.randrange(len(others)))["id"])
        edited = others.pop(self.rng.randrange(len(others))) if others else {"id": first, "title": self.titles[first]}
        self.edit_change_order(project.id, edited)
        earlier_budget = [row["id"] for row in self.earlier(project.budget_changes, project)]
        budget_target = self.rng.choice(earlier_budget) if earlier_budget else transfer
        if budget_target is not None:
            self.edit_budget_change(project.id, budget_target)
        if others:
            self.void(project.id, COMMITMENT, self.rng.choice(others)["id"])
        elif prime is not None:
            self.void(project.id, PRIME, prime)

    def freeze(self, projects: list[int]) -> FieldActivity:
        return FieldActivity(
            round=self.round,
            projects=tuple(projects),
            commitment=ChangeOrderActions(**{name: tuple(ids) for name, ids in self.commitment.items()}),
            prime=ChangeOrderActions(**{name: tuple(ids) for name, ids in self.prime.items()}),
            budget_changes_created=tuple(self.budget_changes_created),
            budget_changes_edited=tuple(self.budget_changes_edited),
            orphan_contract_id=self.orphan_ids[0] if self.orphan_ids else None,
            orphan_change_order_id=self.orphan_ids[1] if self.orphan_ids else None,
        )


def _round_of(title: Any) -> int | None:
    match = MARK.match(title) if isinstance(title, str) else None
    return int(match.group(1)) if match else None


def _projects(client: ProcoreClient, company_id: int) -> list[_Project]:
    """The first ``MAX_PROJECTS`` projects (by number) holding ERP-linked commitments."""
    found: list[_Project] = []
    rows = client.paginate("/rest/v1.1/projects", {"company_id": company_id})
    for row in sorted(rows, key=_by_number("project_number", "origin_id")):
        project = _read_project(client, row["id"])
        if project is not None:
            found.append(project)
        if len(found) == MAX_PROJECTS:
            break
    return found


def _next_round(projects: list[_Project]) -> int:
    rounds = [_round_of(row.get("title")) for project in projects for row in project.commitment_change_orders]
    return max((number for number in rounds if number is not None), default=0) + 1


def simulate_field_activity(
    client: ProcoreClient, company_id: int, *, seed: int = 0, round: int | None = None  # noqa: A002
) -> FieldActivity:
    """Play one round of field work in Procore (see the module docstring); returns what it did."""
    projects = _projects(client, company_id)
    number = _next_round(projects) if round is None else round
    field_ = _Field(client, company_id, random.Random(f"{seed}:{number}"), number)
    for project in projects:
        field_.work(project)
    if projects and not any(project.orphan for project in projects):
        field_.orphan(projects[0])
    return field_.freeze([project.id for project in projects])
