DROP TABLE anomaly_outbox;
DROP TABLE anomalies;
