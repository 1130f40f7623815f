-- Exact event counts per UTC minute, event type and source. The worker adds
-- to them in the transaction that inserts the events, counting only the
-- rows that insert actually added, so a redelivered event never counts
-- twice. Analytics endpoints and dashboards read these instead of
-- scanning events.
CREATE TABLE event_counts_minute (
    minute     timestamptz NOT NULL CHECK (minute = date_trunc('minute', minute, 'UTC')),
    event_type text        NOT NULL,
    source     text        NOT NULL,
    count      bigint      NOT NULL CHECK (count > 0),
    PRIMARY KEY (minute, event_type, source)
);

-- Per-type series over a time range without visiting other types' rows.
CREATE INDEX event_counts_minute_event_type_minute_idx ON event_counts_minute (event_type, minute);

-- Events stored before this migration.
INSERT INTO event_counts_minute (minute, event_type, source, count)
SELECT date_trunc('minute', event_ts, 'UTC'), event_type, source, count(*)
FROM events
GROUP BY 1, 2, 3;

CREATE VIEW event_counts_hour AS
SELECT date_trunc('hour', minute, 'UTC') AS hour, event_type, source, sum(count)::bigint AS count
FROM event_counts_minute
GROUP BY 1, 2, 3;

CREATE VIEW event_counts_day AS
SELECT date_trunc('day', minute, 'UTC') AS day, event_type, source, sum(count)::bigint AS count
FROM event_counts_minute
GROUP BY 1, 2, 3;
