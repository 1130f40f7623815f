-- Flat views for dashboards (Superset datasets, Grafana's PostgreSQL
-- datasource). Each has exactly one timestamptz column, the one to put on
-- a time axis, and no jsonb: the payload keys the known event types carry
-- are columns, cast only when the value has the expected JSON type, so one
-- odd payload never fails a dashboard query. The read-only role in
-- deploy/postgres/dashboards-role.sql may read these and nothing else.

CREATE VIEW v_events AS
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

CREATE VIEW v_event_counts_minute AS
SELECT minute AS bucket_start, event_type, source, count FROM event_counts_minute;

CREATE VIEW v_event_counts_hour AS
SELECT hour AS bucket_start, event_type, source, count FROM event_counts_hour;

CREATE VIEW v_event_counts_day AS
SELECT day AS bucket_start, event_type, source, count FROM event_counts_day;

CREATE VIEW v_anomalies AS
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

-- Anomaly counts over a time range, whatever the rule, from the index
-- alone (index-only scan), and the recent list in time order.
CREATE INDEX anomalies_event_ts_idx ON anomalies (event_ts) INCLUDE (rule, severity, user_id);
