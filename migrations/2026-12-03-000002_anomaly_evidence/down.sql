ALTER TABLE anomalies DROP COLUMN evidence;
