DROP INDEX anomalies_event_ts_idx;
DROP VIEW v_anomalies;
DROP VIEW v_event_counts_day;
DROP VIEW v_event_counts_hour;
DROP VIEW v_event_counts_minute;
DROP VIEW v_events;
