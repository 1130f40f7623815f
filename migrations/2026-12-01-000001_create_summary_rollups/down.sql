DROP INDEX anomalies_event_id_idx;
DROP TABLE ingest_lag_minute;
DROP TABLE users;
