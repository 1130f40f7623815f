DROP TABLE ingest_lag_minute;
DROP TABLE users;
