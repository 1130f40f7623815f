-- Exact event counts per UTC minute and per UTC hour, by event type and
-- source. The worker adds to both in the transaction that inserts the
-- events, counting only the rows that insert actually added, so a
-- redelivered event never counts twice. Analytics endpoints and
-- dashboards read these instead of scanning events: a range's whole hours
-- from the hourly table, its remaining whole minutes from the minute
-- table, its partial-minute edges from events.
--
-- The hourly counts are a table, not a view over the minutes: summing a
-- week of minute rows (about 400k at 40 type/source pairs) took 50-80 ms,
-- the same week of hour rows well under a millisecond per thousand.
CREATE TABLE event_counts_minute (
    minute     timestamptz NOT NULL CHECK (minute = date_trunc('minute', minute, 'UTC')),
    event_type text        NOT NULL,
    source     text        NOT NULL,
    count      bigint      NOT NULL CHECK (count > 0),
    PRIMARY KEY (minute, event_type, source)
);
-- Per-type series over a time range without visiting other types' rows.
CREATE INDEX event_counts_minute_event_type_minute_idx ON event_counts_minute (event_type, minute);

CREATE TABLE event_counts_hour (
    hour       timestamptz NOT NULL CHECK (hour = date_trunc('hour', hour, 'UTC')),
    event_type text        NOT NULL,
    source     text        NOT NULL,
    count      bigint      NOT NULL CHECK (count > 0),
    PRIMARY KEY (hour, event_type, source)
);
CREATE INDEX event_counts_hour_event_type_hour_idx ON event_counts_hour (event_type, hour);

-- Events stored before this migration.
INSERT INTO event_counts_minute (minute, event_type, source, count)
SELECT date_trunc('minute', event_ts, 'UTC'), event_type, source, count(*)
FROM events
GROUP BY 1, 2, 3;
INSERT INTO event_counts_hour (hour, event_type, source, count)
SELECT date_trunc('hour', minute, 'UTC'), event_type, source, sum(count)
FROM event_counts_minute
GROUP BY 1, 2, 3;

CREATE VIEW event_counts_day AS
SELECT date_trunc('day', hour, 'UTC') AS day, event_type, source, sum(count)::bigint AS count
FROM event_counts_hour
GROUP BY 1, 2, 3;
