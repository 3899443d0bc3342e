"""Lines of contracts, commitments and direct costs: each on a WBS code of its header's project.

Lines pick distinct WBS codes of the project their header is meant for (a header with a mistyped
project still has lines that fit the right one), preferring the cost types that suit the
document (subcontract lines are mostly "S"). A few lines of good headers get a cost code their
project does not have.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from demo.sample_erp.base import (
    Column,
    Company,
    Ref,
    Row,
    Spoiler,
    TableData,
    defect_counts,
    money,
    stamp,
    wbs_key,
)
from demo.sample_erp.jobcost import CODE_NAMES, codes_used

LINE_DEFECT_SHARE = 0.01
TEN_OR_SO = tuple((count, 1.0) for count in range(7, 14))  # lines per header, evenly
# (rng, the header as meant, the WBS codes its lines are on) → each line's amount fields
Amounts = Callable[[random.Random, Row, list[Row]], list[dict[str, object]]]


@dataclass(frozen=True)
class LineSpec:
    table: str
    header_table: str
    header_key: str
    columns: tuple[Column, ...]
    key_width: int
    counts: tuple[tuple[int, float], ...]  # (lines per header, weight)
    type_weights: dict[str, float]
    amounts: Amounts
    defect_share: float = LINE_DEFECT_SHARE

    def refs(self, company: Company) -> list[Ref]:
        headers = {row[self.header_key]: row for row in company.tables[self.header_table].rows}
        return [
            (self.header_key, self.header_table, lambda row: row[self.header_key]),
            ("cost_code", "wbs_codes", lambda row: _wbs_of(headers[row[self.header_key]], row)),
        ]


def _wbs_of(header: Row, line: Row) -> str:
    project = header["project_number"]
    return wbs_key(project, line["sub_job_code"], line["cost_code"], line["cost_type"])


def generate_lines(rng: random.Random, company: Company, spec: LineSpec) -> TableData:
    choices = usable_wbs(company)
    projects = company.intended(spec.header_table)
    rows = []
    for key, header in projects.items():
        count = rng.choices(*zip(*spec.counts))[0]
        picked = _pick_wbs(rng, choices[header["project_number"]], count, spec.type_weights)
        for n, (wbs, values) in enumerate(zip(picked, spec.amounts(rng, header, picked)), start=1):
            rows.append(_line(rng, company, spec, key, n, wbs, values))
    data = TableData(spec.table, "line_key", spec.columns, rows)
    refs = spec.refs(company)
    _spoil_lines(rng, company, spec, data, refs)
    company.block(data, refs)
    return data


def usable_wbs(company: Company) -> dict[str, list[Row]]:
    """Each project's WBS codes that are not bad themselves (blocked ones on bad projects too)."""
    found: dict[str, list[Row]] = defaultdict(list)
    for row in company.tables["wbs_codes"].rows:
        if company.status("wbs_codes", row["wbs_key"]) != "failed":
            found[row["project_number"]].append(row)
    return found


def _pick_wbs(
    rng: random.Random, choices: list[Row], count: int, weights: dict[str, float]
) -> list[Row]:
    """``count`` distinct WBS codes, favouring cost types by weight (weighted sampling by keys,
    over a random handful of candidates so that big projects cost no more than small ones)."""
    handful = rng.sample(choices, min(len(choices), 3 * count))
    keyed = sorted(handful, key=lambda w: -(rng.random() ** (1 / weights.get(w["cost_type"], 1.0))))
    return sorted(keyed[:count], key=lambda w: w["wbs_key"])


def _line(
    rng: random.Random, company: Company, spec: LineSpec, header: str, n: int, wbs: Row,
    values: dict[str, object],
) -> Row:
    return {
        "line_key": f"{header}|{n:0{spec.key_width}d}",
        spec.header_key: header,
        "line_number": n,
        "sub_job_code": wbs["sub_job_code"],
        "cost_code": wbs["cost_code"],
        "cost_type": wbs["cost_type"],
        "description": wbs["description"],
        **values,
        "updated_at": stamp(rng, company.now),
    }


def _spoil_lines(
    rng: random.Random, company: Company, spec: LineSpec, data: TableData, refs: list[Ref]
) -> None:
    """Lines on a cost code their project does not have (as the ERP may let one be typed)."""
    used = codes_used(company)
    headers = company.intended(spec.header_table)
    spoiler = Spoiler(rng, data, lambda row: company.clean(row, refs))
    count = defect_counts(len(data.rows), {"non_existent_cost_code": spec.defect_share})
    for row in spoiler.pick(count["non_existent_cost_code"]):
        project = headers[row[spec.header_key]]["project_number"]
        code = rng.choice([c for c in CODE_NAMES if c not in used[project]])
        spoiler.spoil(row, "cost_code", "non_existent_cost_code", code)


def money_lines(low: float, high: float) -> Amounts:
    """Amounts drawn log-uniformly between ``low`` and ``high``."""

    def amounts(rng: random.Random, header: Row, picked: list[Row]) -> list[dict[str, object]]:
        return [
            {"amount": money(math.exp(rng.uniform(math.log(low), math.log(high))))} for _ in picked
        ]

    return amounts
