DROP VIEW event_counts_day;
DROP TABLE event_counts_hour;
DROP TABLE event_counts_5min;
DROP TABLE event_counts_minute;
