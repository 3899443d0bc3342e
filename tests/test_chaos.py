"""The chaos run (bench/chaos.py) on a small company: one seed, one SIGKILL in a loading batch.

The full run, three seeds and three kills at the sample company's scale 1, lives in the bench;
this one keeps the same code in ``make test``: the faulty side must end holding exactly what the
clean side holds, in Procore, in the ERP's tables and in the CSV exports, money to the cent. And
since a comparison that finds nothing proves nothing by itself, the same snapshots are then
spoiled by hand, one way each, and every spoiling must show.
"""

from __future__ import annotations

import copy
import sys
from decimal import Decimal
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from _chaos_compare import CENT, Snapshot, verdict  # noqa: E402
from chaos import SeedResult, run_seed, side_configs  # noqa: E402
from connectors.run_lock import lock_name  # noqa: E402
from flows import ENTITY_FLOWS  # noqa: E402
from demo import sample_erp  # noqa: E402

# The run alone takes about 70 s; beside the rest of the suite (three or four workers on two
# cores) it took 125-225 s, close to the suite's 300 s bound per test.
pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.timeout(600)]
SCALE = 0.05


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> SeedResult:
    work = tmp_path_factory.mktemp("chaos")
    sample_erp.generate(work / "erp", scale=SCALE, seed=42)
    return run_seed(1, work / "erp", work, prefect_api, moments=("loading",))


def test_the_clean_and_faulty_sides_never_wait_on_each_others_run_locks() -> None:
    """Both sides run on one Prefect server; a shared run lock let the faulty side's kills stall
    the clean side (and freeing the killed runs' locks freed the clean side's)."""
    clean, faulty = side_configs(seed=1)
    locks = [{lock_name(config.company_id, entity) for entity in ENTITY_FLOWS} for config in (clean, faulty)]
    assert not locks[0] & locks[1]


def spoiled(result: SeedResult) -> Snapshot:
    return copy.deepcopy(result.faulty)


def figures(clean: Snapshot, faulty: Snapshot) -> dict[str, tuple[int, int, int]]:
    return {f.entity: (f.missing, f.extra, f.different) for f in verdict(clean, faulty, ENTITY_FLOWS)
            if not f.clean}


def test_a_small_company_under_faults_and_a_kill_ends_as_the_clean_run(chaos: SeedResult) -> None:
    [(point, fired)] = chaos.kills
    assert fired and fired.startswith("loading:"), f"the kill at write call {point[1]} was never reached"
    assert sum(s["retries"] for run in chaos.runs for s in run.summaries) > 0, "the faults never fired"
    assert any(run.killed_at for run in chaos.runs) and chaos.runs[-1].completed
    assert chaos.zero, "\n".join(e for line in chaos.lines for e in line.examples[:5])
    assert sum(line.records for line in chaos.lines) > 500, "the comparison compared nothing"


def test_the_comparison_sees_a_record_gone_a_cent_changed_and_a_record_stuck(chaos: SeedResult) -> None:
    gone = spoiled(chaos)
    gone.records["budget_line_items"].pop()
    assert figures(chaos.clean, gone) == {"budget_lines": (1, 0, 0),
                                          "money per project and cost code": (0, 0, 1)}

    cent = spoiled(chaos)
    line = cent.records["direct_cost_line_items"][0]
    line["amount"] = str(round(float(line["amount"]) + 0.01, 2))
    assert figures(chaos.clean, cent) == {"direct_cost_lines": (0, 0, 1),
                                          "money per project and cost code": (0, 0, 1)}

    twice = spoiled(chaos)
    twice.records["rp_people"].append({**twice.records["rp_people"][0], "id": "a-second-copy"})
    assert figures(chaos.clean, twice) == {"resource_people": (0, 1, 0)}

    stuck = spoiled(chaos)
    key = next(k for k, s in stuck.states["vendors"].items() if s == "ok")
    stuck.states["vendors"][key] = "blocked"
    assert figures(chaos.clean, stuck) == {"vendors": (1, 0, 0)}

    erp = spoiled(chaos)
    table = next(t for t, (_, rows) in erp.erp.items() if rows)
    erp.erp[table][1].pop()
    found = figures(chaos.clean, erp)  # a change order's header gone leaves its lines' money without a project
    assert found.pop(f"ERP table {table}") == (1, 0, 0) and set(found) <= {"ERP money per project and cost code"}


def test_the_comparison_sees_a_cent_of_the_fields_money_in_procore_the_erp_and_the_csv_files(
    chaos: SeedResult,
) -> None:
    procore = spoiled(chaos)
    line = procore.records["commitment_change_order_line_items"][0]
    line["amount"] = str(Decimal(line["amount"]) + CENT)
    # A line without origin_id is named by its content: it reads as one line gone, another come.
    assert figures(chaos.clean, procore) == {"commitment_change_orders": (1, 1, 0),
                                             "ERP table commitment_change_order_lines": (1, 1, 0),
                                             "CSV export commitment_change_order_lines": (1, 1, 0),
                                             "money per project and cost code": (0, 0, 1)}

    erp = spoiled(chaos)
    row = erp.erp["commitment_change_order_lines"][1][0]
    row["amount"] += CENT
    assert figures(chaos.clean, erp) == {"ERP table commitment_change_order_lines": (0, 0, 1),
                                         "ERP money per project and cost code": (0, 0, 1)}

    exported = spoiled(chaos)
    row = exported.exports["budget_change_lines"][1][0]
    row["amount"] = str(Decimal(row["amount"]) + CENT)
    assert figures(chaos.clean, exported) == {"CSV export budget_change_lines": (0, 0, 1),
                                              "CSV money per project and cost code": (0, 0, 1)}

