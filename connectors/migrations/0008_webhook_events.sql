-- 0008: Procore's webhook deliveries, one row per event (docs/webhooks.md).
--
-- Procore delivers at least once: the same event may arrive twice, from a retry or a second
-- receiver behind a load balancer. Its ULID (its id where a payload has none) is the key, so a
-- delivery sent twice is one row and starts one run.
--
-- status   pending  received, not yet looked at by the dispatcher
--          started  a targeted run was started for it (flow_run_id, entity)
--          echo     caused by procore-sync's own writes: dropped, nothing echoes back
--          drift    a change in Procore to a record the ERP is the master of: reported
--          ignored  nothing to do (a resource or project procore-sync does not sync): message

CREATE TABLE webhook_events (
    event_key     VARCHAR PRIMARY KEY,
    received_at   TIMESTAMPTZ NOT NULL,
    resource_name VARCHAR NOT NULL,
    event_type    VARCHAR NOT NULL,
    resource_id   VARCHAR NOT NULL,
    project_id    VARCHAR,
    payload       JSON NOT NULL,
    status        VARCHAR NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'started', 'echo', 'drift', 'ignored')),
    entity        VARCHAR,
    flow_run_id   VARCHAR,
    message       VARCHAR,
    settled_at    TIMESTAMPTZ
);

CREATE INDEX webhook_events_pending ON webhook_events (status, received_at);
