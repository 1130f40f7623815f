// @generated automatically by Diesel CLI.

diesel::table! {
    events (event_id, event_ts) {
        event_id -> Uuid,
        user_id -> Text,
        event_type -> Text,
        source -> Text,
        event_ts -> Timestamptz,
        timestamp_raw -> Nullable<Jsonb>,
        received_at -> Timestamptz,
        stored_at -> Timestamptz,
        payload -> Jsonb,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
    }
}

diesel::table! {
    anomalies (anomaly_id, event_ts) {
        anomaly_id -> Uuid,
        event_id -> Uuid,
        user_id -> Text,
        rule -> Text,
        severity -> Text,
        description -> Text,
        event_ts -> Timestamptz,
        detected_at -> Timestamptz,
        details -> Jsonb,
        evidence -> Nullable<Jsonb>,
    }
}

diesel::table! {
    anomaly_outbox (anomaly_id) {
        anomaly_id -> Uuid,
        queued_at -> Timestamptz,
    }
}

diesel::table! {
    event_counts_minute (minute, event_type, source) {
        minute -> Timestamptz,
        event_type -> Text,
        source -> Text,
        count -> Int8,
    }
}

diesel::table! {
    event_counts_5min (bucket, event_type, source) {
        bucket -> Timestamptz,
        event_type -> Text,
        source -> Text,
        count -> Int8,
    }
}

diesel::table! {
    event_counts_hour (hour, event_type, source) {
        hour -> Timestamptz,
        event_type -> Text,
        source -> Text,
        count -> Int8,
    }
}

diesel::table! {
    ingest_lag_hour (hour, bucket) {
        hour -> Timestamptz,
        bucket -> Int2,
        count -> Int8,
    }
}

diesel::table! {
    users (user_id) {
        user_id -> Text,
        first_seen -> Timestamptz,
        last_hour -> Timestamptz,
    }
}

diesel::table! {
    retention (data) {
        data -> Text,
        complete_from -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    dlq_redrives (dlq_topic, dlq_partition, dlq_offset) {
        dlq_topic -> Text,
        dlq_partition -> Int4,
        dlq_offset -> Int8,
        reason -> Text,
        event_id -> Nullable<Uuid>,
        to_topic -> Text,
        to_partition -> Int4,
        to_offset -> Int8,
        redriven_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    anomalies,
    anomaly_outbox,
    dlq_redrives,
    event_counts_5min,
    event_counts_hour,
    event_counts_minute,
    events,
    ingest_lag_hour,
    retention,
    users,
);
