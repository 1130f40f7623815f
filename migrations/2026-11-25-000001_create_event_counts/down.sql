DROP VIEW event_counts_day;
DROP VIEW event_counts_hour;
DROP TABLE event_counts_minute;
