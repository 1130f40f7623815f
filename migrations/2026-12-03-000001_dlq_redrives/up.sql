-- What `eventpipe dlq redrive` put back on the events topic: one row per
-- DLQ message redriven, written after Kafka acknowledged the copy, so a
-- second run skips it (an interrupted run may send a message twice; the
-- worker stores its event once either way).
CREATE TABLE dlq_redrives (
    dlq_topic      text        NOT NULL,
    dlq_partition  integer     NOT NULL,
    dlq_offset     bigint      NOT NULL,
    reason         text        NOT NULL,
    event_id       uuid,
    to_topic       text        NOT NULL,
    to_partition   integer     NOT NULL,
    to_offset      bigint      NOT NULL,
    redriven_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dlq_topic, dlq_partition, dlq_offset)
);
