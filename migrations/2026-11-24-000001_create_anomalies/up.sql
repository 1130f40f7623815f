-- Anomalies the worker's rules found. The id is a UUIDv5 of the rule and
-- the triggering event, so reprocessing the same events never adds a row.
-- Written in the transaction that stores the triggering event; published
-- to the anomalies topic after it commits (published_at set then; a sweep
-- publishes any left unpublished by a crash).
CREATE TABLE anomalies (
    anomaly_id   uuid        PRIMARY KEY,
    event_id     uuid        NOT NULL REFERENCES events (event_id),
    user_id      text        NOT NULL,
    rule         text        NOT NULL,
    severity     text        NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    description  text        NOT NULL,
    event_ts     timestamptz NOT NULL,
    detected_at  timestamptz NOT NULL DEFAULT now(),
    details      jsonb       NOT NULL,
    published_at timestamptz
);

-- One user's anomalies in time order.
CREATE INDEX anomalies_user_id_event_ts_idx ON anomalies (user_id, event_ts);
-- Counts by rule over time (dashboards).
CREATE INDEX anomalies_rule_event_ts_idx ON anomalies (rule, event_ts);
-- The publication sweep finds the unpublished ones without a scan.
CREATE INDEX anomalies_unpublished_idx ON anomalies (detected_at) WHERE published_at IS NULL;
