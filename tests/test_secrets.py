"""No secret (client secret, access token) in any log line, artifact, state row or error text."""

from __future__ import annotations

import logging

import duckdb
import pytest
import requests

from flows.entities import sync_vendors
from sandbox.config import SandboxConfig
from sandbox.server import start_in_thread
from tasks.spec import SyncOptions
from tests.conftest import SampleErp, settings_env
from tests.support import engine_runtime, flow_run_logs, run_vendors

pytestmark = pytest.mark.usefixtures("prefect_api")

SECRET = "pcs-test-secret-7f3a9c41d2"
WRONG_SECRET = "pcs-wrong-secret-0b9e77aa31"


def all_artifacts(api_url: str) -> str:
    body = {"limit": 200, "offset": 0, "sort": "CREATED_DESC"}
    answer = requests.post(f"{api_url}/artifacts/filter", json=body, timeout=30)
    answer.raise_for_status()
    return answer.text


def state_dump(path) -> str:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [row[0] for row in con.execute("select table_name from information_schema.tables").fetchall()]
        return "\n".join(str(con.execute(f'select * from "{name}"').fetchall()) for name in tables)


def test_secrets_never_leave_the_process(small_erp: SampleErp, tmp_path, monkeypatch, caplog, prefect_api) -> None:
    caplog.set_level(logging.DEBUG)
    config = SandboxConfig(client_secret=SECRET, error_rate=0.2, seed=5, spike_limit=10_000)
    with start_in_thread(config) as sandbox:
        settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path,
                                PROCORE_SYNC_CLIENT_SECRET=SECRET, PROCORE_SYNC_BATCH_SIZE="10",
                                PROCORE_SYNC_MAX_ATTEMPTS="20")
        good = run_vendors(engine_runtime(settings, sleep=lambda _: None), return_state=True)
        monkeypatch.setenv("PROCORE_SYNC_CLIENT_SECRET", WRONG_SECRET)
        refused = sync_vendors(options=SyncOptions(erp_keys=["S-00002"]), return_state=True)
        tokens = sandbox.app.state.sandbox.tokens.issued()

    assert good.is_completed() and refused.is_failed()
    assert tokens, "no token was issued: the scan would prove nothing"
    with pytest.raises(Exception) as refused_error:
        refused.result()
    texts = {
        "log records": caplog.text,
        "flow run logs": "\n".join(
            line for s in (good, refused) for line in flow_run_logs(prefect_api, str(s.state_details.flow_run_id))
        ),
        "artifacts": all_artifacts(prefect_api),
        "state rows": state_dump(settings.state_path),
        "error text": f"{refused.message}\n{refused_error.value}\n{refused_error.value!r}",
    }
    assert "Failed authentication" in texts["error text"] or "401" in texts["error text"]
    for where, text in texts.items():
        for secret in (SECRET, WRONG_SECRET, *tokens):
            assert secret not in text, f"a secret leaked into the {where}"
