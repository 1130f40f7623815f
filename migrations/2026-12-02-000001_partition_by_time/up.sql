-- events and anomalies become range-partitioned by event time, so that
-- retention drops whole partitions (a file unlink) instead of deleting
-- rows (bloat, vacuum, long locks). See docs/ARCHITECTURE.md (storage)
-- and docs/OPERATIONS.md (retention).
--
-- Partitions: one per day (the worker's PARTITION_SPAN_DAYS), named for
-- their first UTC day (events_20261202), created ahead of time by the
-- worker and here for the first days; a DEFAULT partition takes any event
-- whose day has no partition (years ago, past what retention keeps, or
-- beyond the prepared days), so no allowed timestamp is ever refused.
--
-- A unique key on a partitioned table must hold the partition key, so
-- event_id alone cannot be unique over all of events. Each partition of
-- events has its own unique index on event_id instead (the worker inserts
-- with ON CONFLICT DO NOTHING, which every unique index of the partition
-- a row goes to arbitrates): one id is stored once per partition, whatever
-- its timestamps, and the worker's insert looks for the id across a
-- partition boundary within its dedup window. anomalies' key becomes
-- (anomaly_id, event_ts): its id is derived from the event's and the rule.
--
-- Existing rows are not copied: the old tables become one partition each,
-- covering every time before the end of the day of the migration (or of
-- their latest event), dropped by retention as a whole once that day has
-- expired. Their indexes serve as the partitions' own (the old primary key
-- of events is the partition's unique event_id); anomalies' new key is
-- built on the old table, and both are checked against the partition bound
-- (one scan each), holding the tables for that long. See
-- docs/OPERATIONS.md for its cost.

-- The foreign keys between the tables go: an events partition can be
-- dropped while the anomalies of its events are kept longer, and an
-- anomalies partition while its outbox entries wait (retention removes
-- those too).
ALTER TABLE anomalies DROP CONSTRAINT anomalies_event_id_fkey;
ALTER TABLE anomaly_outbox DROP CONSTRAINT anomaly_outbox_anomaly_id_fkey;

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER TABLE events_unpartitioned RENAME CONSTRAINT events_pkey TO events_unpartitioned_event_id_key;
ALTER INDEX events_event_ts_idx RENAME TO events_unpartitioned_event_ts_idx;
ALTER INDEX events_user_id_event_ts_idx RENAME TO events_unpartitioned_user_id_event_ts_idx;
ALTER INDEX events_event_type_event_ts_idx RENAME TO events_unpartitioned_event_type_event_ts_idx;

CREATE TABLE events (
    event_id        uuid        NOT NULL,
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
) PARTITION BY RANGE (event_ts);
CREATE INDEX events_event_ts_idx ON events (event_ts);
CREATE INDEX events_user_id_event_ts_idx ON events (user_id, event_ts);
CREATE INDEX events_event_type_event_ts_idx ON events (event_type, event_ts);
CREATE TABLE events_default PARTITION OF events DEFAULT;
ALTER TABLE events_default ADD CONSTRAINT events_default_event_id_key UNIQUE (event_id);

ALTER TABLE anomalies RENAME TO anomalies_unpartitioned;
ALTER TABLE anomalies_unpartitioned DROP CONSTRAINT anomalies_pkey;
ALTER INDEX anomalies_user_id_event_ts_idx RENAME TO anomalies_unpartitioned_user_id_event_ts_idx;
ALTER INDEX anomalies_rule_event_ts_idx RENAME TO anomalies_unpartitioned_rule_event_ts_idx;
ALTER INDEX anomalies_event_ts_idx RENAME TO anomalies_unpartitioned_event_ts_idx;
ALTER INDEX anomalies_event_id_idx RENAME TO anomalies_unpartitioned_event_id_idx;

-- The id is a UUIDv5 of the rule and the triggering event, event_ts the
-- triggering event's time: reprocessing the same event never adds a row.
CREATE TABLE anomalies (
    anomaly_id  uuid        NOT NULL,
    event_id    uuid        NOT NULL,
    user_id     text        NOT NULL,
    rule        text        NOT NULL,
    severity    text        NOT NULL CONSTRAINT anomalies_severity_check CHECK (severity IN ('low', 'medium', 'high')),
    description text        NOT NULL,
    event_ts    timestamptz NOT NULL,
    detected_at timestamptz NOT NULL DEFAULT now(),
    details     jsonb       NOT NULL,
    PRIMARY KEY (anomaly_id, event_ts)
) PARTITION BY RANGE (event_ts);
CREATE INDEX anomalies_user_id_event_ts_idx ON anomalies (user_id, event_ts);
CREATE INDEX anomalies_rule_event_ts_idx ON anomalies (rule, event_ts);
CREATE INDEX anomalies_event_ts_idx ON anomalies (event_ts) INCLUDE (rule, severity, user_id);
CREATE INDEX anomalies_event_id_idx ON anomalies (event_id);
CREATE TABLE anomalies_default PARTITION OF anomalies DEFAULT;

-- The views read the new tables (the old ones become partitions of them
-- below, or go).
CREATE OR REPLACE VIEW v_events AS
SELECT
    event_id,
    user_id,
    event_type,
    source,
    event_ts,
    -- received by the API → committed to PostgreSQL
    extract(epoch FROM stored_at - received_at)::double precision AS ingest_lag_seconds,
    CASE WHEN jsonb_typeof(payload -> 'amount') = 'number' THEN (payload ->> 'amount')::numeric END AS amount,
    payload ->> 'currency' AS currency,
    payload ->> 'product_id' AS product_id,
    payload ->> 'payment_method' AS payment_method,
    CASE WHEN jsonb_typeof(payload -> 'success') = 'boolean' THEN (payload ->> 'success')::boolean END AS success,
    payload ->> 'location' AS location,
    payload ->> 'login_method' AS login_method,
    payload ->> 'ip_address' AS ip_address,
    payload ->> 'session_id' AS session_id,
    payload ->> 'endpoint' AS endpoint,
    payload ->> 'method' AS method,
    CASE WHEN jsonb_typeof(payload -> 'status_code') = 'number' THEN (payload ->> 'status_code')::numeric END AS status_code,
    CASE WHEN jsonb_typeof(payload -> 'response_time_ms') = 'number' THEN (payload ->> 'response_time_ms')::numeric END AS response_time_ms,
    CASE WHEN jsonb_typeof(payload -> 'heart_rate') = 'number' THEN (payload ->> 'heart_rate')::numeric END AS heart_rate,
    CASE WHEN jsonb_typeof(payload -> 'duration_seconds') = 'number' THEN (payload ->> 'duration_seconds')::numeric END AS duration_seconds
FROM events;

CREATE OR REPLACE VIEW v_anomalies AS
SELECT
    anomaly_id,
    event_id,
    user_id,
    rule,
    severity,
    description,
    event_ts,
    -- triggering event's time → detection
    extract(epoch FROM detected_at - event_ts)::double precision AS detection_delay_seconds,
    details::text AS details
FROM anomalies;

-- Creates `parent`'s partition for [day, day + span days), with its own
-- unique event_id for events.
CREATE FUNCTION pg_temp.create_partition(parent text, day timestamptz, span integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    name text := parent || '_' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   name, parent, day, day + make_interval(days => span));
    IF parent = 'events' THEN
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I UNIQUE (event_id)', name, name || '_event_id_key');
    END IF;
END $$;

-- The old table becomes the partition of every time before `bound`, the
-- end of the day of its latest row (or today), or goes when empty.
CREATE FUNCTION pg_temp.adopt(parent text, old text) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    latest timestamptz;
    bound timestamptz;
BEGIN
    EXECUTE format('SELECT max(event_ts) FROM %I', old) INTO latest;
    bound := date_trunc('day', greatest(now(), latest), 'UTC') + interval '1 day';
    IF latest IS NULL THEN
        EXECUTE format('DROP TABLE %I', old);
        RETURN date_trunc('day', now(), 'UTC');
    END IF;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)', parent, old, bound);
    EXECUTE format('ALTER TABLE %I RENAME TO %I', old,
                   parent || '_until_' || to_char(bound AT TIME ZONE 'UTC', 'YYYYMMDD'));
    RETURN bound;
END $$;

-- Today and the next two days (the worker keeps PARTITION_AHEAD_DAYS).
DO $$
DECLARE
    first timestamptz;
    parent text;
BEGIN
    FOREACH parent IN ARRAY ARRAY['events', 'anomalies'] LOOP
        first := pg_temp.adopt(parent, parent || '_unpartitioned');
        FOR i IN 0..2 LOOP
            PERFORM pg_temp.create_partition(parent, first + make_interval(days => i), 1);
        END LOOP;
    END LOOP;
END $$;

-- What retention removed: from `complete_from` on, the table named by
-- `data` ('events', 'anomalies' or 'rollups': the counts, the lag
-- histogram and users) holds everything stored; before it, retention has
-- removed rows. Written before anything is removed, so a reader that
-- checks it never takes a partial count for a whole one.
CREATE TABLE retention (
    data          text        PRIMARY KEY CHECK (data IN ('events', 'anomalies', 'rollups')),
    complete_from timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
