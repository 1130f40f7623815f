-- Exact event counts per UTC minute, five minutes and hour, by event type
-- and source. The worker adds to all three in the transaction that inserts
-- the events, counting only the rows that insert actually added, so a
-- redelivered event never counts twice. Analytics endpoints and dashboards
-- read these instead of scanning events: a range's whole hours from the
-- hourly table, its remaining whole five-minute spans from that table, the
-- remaining whole minutes from the minute table, and its partial-minute
-- edges from events.
--
-- The coarser counts are tables, not views over the minutes: a day of
-- minute rows at 40 type/source pairs is 57,600 rows (about 15 ms to
-- bucket), a week 400k (50-80 ms to sum); the same week in hours is 6,720.
CREATE TABLE event_counts_minute (
    minute     timestamptz NOT NULL CHECK (minute = date_trunc('minute', minute, 'UTC')),
    event_type text        NOT NULL,
    source     text        NOT NULL,
    count      bigint      NOT NULL CHECK (count > 0),
    PRIMARY KEY (minute, event_type, source) INCLUDE (count)
);
-- Per-type series over a time range without visiting other types' rows
-- (likewise on each tier).
CREATE INDEX event_counts_minute_event_type_minute_idx ON event_counts_minute (event_type, minute) INCLUDE (source, count);

CREATE TABLE event_counts_5min (
    bucket     timestamptz NOT NULL CHECK (bucket = date_bin('5 minutes', bucket, timestamptz '1970-01-01 00:00:00+00')),
    event_type text        NOT NULL,
    source     text        NOT NULL,
    count      bigint      NOT NULL CHECK (count > 0),
    PRIMARY KEY (bucket, event_type, source) INCLUDE (count)
);
CREATE INDEX event_counts_5min_event_type_bucket_idx ON event_counts_5min (event_type, bucket) INCLUDE (source, count);

CREATE TABLE event_counts_hour (
    hour       timestamptz NOT NULL CHECK (hour = date_trunc('hour', hour, 'UTC')),
    event_type text        NOT NULL,
    source     text        NOT NULL,
    count      bigint      NOT NULL CHECK (count > 0),
    PRIMARY KEY (hour, event_type, source) INCLUDE (count)
);
CREATE INDEX event_counts_hour_event_type_hour_idx ON event_counts_hour (event_type, hour) INCLUDE (source, count);

-- Events stored before this migration.
INSERT INTO event_counts_minute (minute, event_type, source, count)
SELECT date_trunc('minute', event_ts, 'UTC'), event_type, source, count(*)
FROM events
GROUP BY 1, 2, 3;
INSERT INTO event_counts_5min (bucket, event_type, source, count)
SELECT date_bin('5 minutes', minute, timestamptz '1970-01-01 00:00:00+00'), event_type, source, sum(count)
FROM event_counts_minute
GROUP BY 1, 2, 3;
INSERT INTO event_counts_hour (hour, event_type, source, count)
SELECT date_trunc('hour', minute, 'UTC'), event_type, source, sum(count)
FROM event_counts_minute
GROUP BY 1, 2, 3;

CREATE VIEW event_counts_day AS
SELECT date_trunc('day', hour, 'UTC') AS day, event_type, source, sum(count)::bigint AS count
FROM event_counts_hour
GROUP BY 1, 2, 3;
