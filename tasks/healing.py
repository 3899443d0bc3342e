"""Which records an ordinary run reads again whatever the cursor: nothing stays stuck.

The cursor passes every record it read, so a record that did not land must be asked for again,
or it waits for a full resync. Three kinds are:

- **blocked** records: their parent may have landed since; every run, since mapping one costs
  no call;
- records **held back** (a contract sent as Draft until its lines land): every run;
- records that **failed for a reason outside themselves** (``record_state.failed_outside``: a
  parent missing from the ERP, a project the account may not write to, a batch refused in one
  answer or left unconfirmed, a 5xx after all retries): the cause may go away without the
  record changing. They are read by the next runs while they have failed fewer than
  ``EVERY_RUN_ATTEMPTS`` times in a row (a passing fault clears at once), then after a wait
  that doubles with each further failure, from ``FIRST_WAIT`` up to ``LONGEST_WAIT``: a cause
  that does not go away costs one try (at most one write) per record every six hours, not one
  per run. ``record_state.attempts`` counts the consecutive failures; its ``updated_at`` is
  when the last one was recorded.

A record that failed for its own content (an invalid field, a refusal by Procore) is read
again only when it changes in the ERP, or by a full or targeted resync.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from procore_sync.records import RecordState, Status
from tasks.spec import HELD

# The only statuses ``to_read_again`` may pick (held back records are warnings): a run loads
# these rows alone, not the state of every record it ever synced.
MAY_READ_AGAIN: tuple[Status, ...] = ("blocked", "warning", "failed")
EVERY_RUN_ATTEMPTS = 3
FIRST_WAIT = timedelta(minutes=30)
LONGEST_WAIT = timedelta(hours=6)


def wait_after(attempts: int) -> timedelta:
    """How long a record that failed ``attempts`` times in a row, for an outside cause, waits
    before an ordinary run reads it again."""
    if attempts < EVERY_RUN_ATTEMPTS:
        return timedelta(0)
    return min(LONGEST_WAIT, FIRST_WAIT * 2 ** (attempts - EVERY_RUN_ATTEMPTS))


def due(state: RecordState, now: datetime) -> bool:
    """A failure outside the record whose wait is over."""
    return state.status == "failed" and state.failed_outside and now >= state.updated_at + wait_after(state.attempts)


def to_read_again(states: Iterable[RecordState], now: datetime) -> list[str]:
    """Keys an ordinary run reads whatever the cursor: blocked, held back, and due failures."""
    return [s.key for s in states
            if s.status == "blocked" or (s.message or "").startswith(HELD) or due(s, now)]
