-- Anomalies the worker's rules found. The id is a UUIDv5 of the rule and
-- the triggering event, so reprocessing the same events never adds a row.
-- Written in the transaction that stores the triggering event.
CREATE TABLE anomalies (
    anomaly_id  uuid        PRIMARY KEY,
    event_id    uuid        NOT NULL REFERENCES events (event_id),
    user_id     text        NOT NULL,
    rule        text        NOT NULL,
    severity    text        NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    description text        NOT NULL,
    event_ts    timestamptz NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    details     jsonb       NOT NULL
);

-- One user's anomalies in time order.
CREATE INDEX anomalies_user_id_event_ts_idx ON anomalies (user_id, event_ts);
-- Counts by rule over time (dashboards).
CREATE INDEX anomalies_rule_event_ts_idx ON anomalies (rule, event_ts);

-- Anomalies not yet acknowledged by Kafka on the anomalies topic: a row is
-- added with the anomaly and deleted once it is published; a sweep
-- publishes what a stopped worker left here. A narrow table of its own, so
-- publication never rewrites the anomalies rows.
CREATE TABLE anomaly_outbox (
    anomaly_id uuid        PRIMARY KEY REFERENCES anomalies (anomaly_id) ON DELETE CASCADE,
    queued_at  timestamptz NOT NULL DEFAULT now()
);
