-- The read-only role dashboards connect as (Superset, Grafana's PostgreSQL
-- datasource): it may read the v_* views and nothing else, every
-- transaction it opens is read-only, and no statement runs past 30 s.
--
-- Apply it as the database owner after every migration (re-creating a view
-- drops its grants; the file is idempotent), then give the role a password:
--
--   psql "$DATABASE_URL" -f deploy/postgres/dashboards-role.sql
--   psql "$DATABASE_URL" -c "ALTER ROLE eventpipe_dashboards PASSWORD 'change-me'"
BEGIN;

-- Roles are cluster-wide: serialise concurrent runs against one cluster.
SELECT pg_advisory_xact_lock(7394216504);

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'eventpipe_dashboards') THEN
        CREATE ROLE eventpipe_dashboards LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
    END IF;
END
$$;

ALTER ROLE eventpipe_dashboards SET statement_timeout = '30s';
ALTER ROLE eventpipe_dashboards SET default_transaction_read_only = on;
ALTER ROLE eventpipe_dashboards SET idle_in_transaction_session_timeout = '60s';

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO eventpipe_dashboards', current_database());
END
$$;
GRANT USAGE ON SCHEMA public TO eventpipe_dashboards;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM eventpipe_dashboards;
GRANT SELECT ON v_events, v_event_counts_minute, v_event_counts_hour, v_event_counts_day, v_anomalies
    TO eventpipe_dashboards;

COMMIT;
