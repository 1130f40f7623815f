DROP INDEX anomalies_event_id_idx;
DROP TABLE ingest_lag_hour;
DROP TABLE users;
