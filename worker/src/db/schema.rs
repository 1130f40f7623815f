// @generated automatically by Diesel CLI.

diesel::table! {
    events (event_id) {
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
