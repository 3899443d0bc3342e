"""The generic engine: extract → map → plan → load → record → report, for any ``EntitySpec``.

An ERP → Procore entity flow is ``run_entity(SPEC, options)``; a Procore → ERP one is
``tasks.inbound.run_inbound``. Both are one ``tasks.run.Run`` (the skeleton: the company check,
the ledger of outcomes, the cursor, the summary) doing its direction's ``Work``:
``tasks.outbound.ErpToProcore`` here. Prefect stays in ``tasks/prefect_run.py``.
"""

from __future__ import annotations

from tasks.outbound import ErpToProcore
from tasks.report import RunSummary
from tasks.run import Runtime, default_runtime, run_work
from tasks.spec import EntitySpec, SyncOptions


def run_entity(spec: EntitySpec, options: SyncOptions | None = None, runtime: Runtime | None = None) -> RunSummary:
    return run_work(spec.name, options or SyncOptions(), runtime or default_runtime(),
                    lambda run: ErpToProcore(spec, run))
