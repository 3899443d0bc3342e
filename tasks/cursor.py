"""Where a run reads from, and where its cursor goes after: no I/O, no Prefect.

An ERP → Procore run reads from its cursor minus a look-back (a row committed late but stamped
before the cursor is read by the next run, not skipped until the weekly full resync) and moves
the cursor to the newest stamp it read, never past its own start. A Procore → ERP run moves it
to its start on Procore's clock (``tasks/inbound.py``): never this machine's, which may run
ahead of Procore's and so pass changes saved after the read.
"""

from __future__ import annotations

from datetime import datetime, timedelta


def since(before: datetime | None, lookback_s: float, *, ignore: bool) -> datetime | None:
    """The cursor minus the look-back; None (every row) when there is none or the run ignores it.
    The content hash keeps what is read again free of calls."""
    if ignore or before is None:
        return None
    return before - timedelta(seconds=lookback_s)


def next_cursor(before: datetime | None, rows_max: datetime | None, started: datetime, *,
                keep: bool) -> datetime | None:
    """The cursor after a run that read rows up to ``rows_max``: never past the run's start,
    never back (the look-back reads rows older than the cursor), unchanged when told to ``keep``
    it (targeted runs, one-time uploads) or when nothing was read."""
    if keep or rows_max is None:
        return before
    # A row stamped after the start (an ERP clock ahead) must not carry the first cursor past it.
    read_to = min(rows_max, started)
    return read_to if before is None else max(read_to, before)


def procore_cursor(before: datetime | None, procore_started: datetime | None, rows_max: datetime | None, *,
                   keep: bool) -> datetime | None:
    """The cursor after a Procore → ERP run: its start on Procore's clock, as everything Procore
    stamped before it was read. Without Procore's time (a proxy dropped the ``Date``), the newest
    ``updated_at`` read, Procore's stamp too (the overlap covers changes saved in other projects
    meanwhile). Unchanged when told to ``keep`` it (a targeted run)."""
    if keep:
        return before
    if procore_started is not None:
        return procore_started
    if rows_max is None or before is None:
        return rows_max or before
    return max(rows_max, before)
