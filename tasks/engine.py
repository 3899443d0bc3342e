"""The generic engine: extract → map → plan → load → record → report, for any entity.

An entity flow is ``run_entity(SPEC, options)``, either direction: one ``tasks.run.Run`` (the
skeleton: the company check, the ledger of outcomes, the cursor, the summary) doing the ``Work``
of the spec's ``direction``: ``tasks.outbound.ErpToProcore`` for an ``EntitySpec``,
``tasks.inbound.ProcoreToErp`` for an ``InboundSpec``. Prefect stays in ``tasks/prefect_run.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks.inbound import ProcoreToErp
from tasks.outbound import ErpToProcore
from tasks.report import RunSummary
from tasks.run import Run, Runtime, Work, default_runtime, run_work
from tasks.spec import Direction, Spec, SyncOptions

# Each direction's Work, under the direction it declares; a spec is run by the one its own
# ``direction`` names.
WORKS: dict[Direction, Callable[[Any, Run], Work]] = {work.direction: work for work in (ErpToProcore, ProcoreToErp)}


def run_entity(spec: Spec, options: SyncOptions | None = None, runtime: Runtime | None = None) -> RunSummary:
    work = WORKS[spec.direction]
    return run_work(spec.name, options or SyncOptions(), runtime or default_runtime(), lambda run: work(spec, run))
