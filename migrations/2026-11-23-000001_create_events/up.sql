-- Every accepted event, stored once: event_id is the idempotency key, and
-- the worker inserts with ON CONFLICT (event_id) DO NOTHING.
CREATE TABLE events (
    event_id        uuid        PRIMARY KEY,
    user_id         text        NOT NULL,
    event_type      text        NOT NULL,
    source          text        NOT NULL,
    event_ts        timestamptz NOT NULL,
    -- the client's timestamp exactly as sent (string or number), if any
    timestamp_raw   jsonb,
    received_at     timestamptz NOT NULL,
    stored_at       timestamptz NOT NULL DEFAULT now(),
    payload         jsonb       NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL
);

-- Time-range scans (analytics, dashboards).
CREATE INDEX events_event_ts_idx ON events (event_ts);
-- One user's history in time order (anomaly state rebuild, support).
CREATE INDEX events_user_id_event_ts_idx ON events (user_id, event_ts);
-- Counts by type over time.
CREATE INDEX events_event_type_event_ts_idx ON events (event_type, event_ts);
