-- What fired each anomaly: the triggering event as stored, so the anomaly
-- keeps its evidence after retention removes the event (anomalies are kept
-- longer). `{"event": {...}}`; null for anomalies stored before.
ALTER TABLE anomalies ADD COLUMN evidence jsonb;
