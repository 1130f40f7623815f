#!/bin/sh
# One-shot initialisation of Superset in docker-compose: metadata schema,
# admin user, roles, then the eventpipe bundle (database, datasets, charts,
# dashboard) against the read-only dashboards role. Safe to run again.
set -e
superset db upgrade
superset fab create-admin --username admin --firstname Superset --lastname Admin \
    --email admin@example.invalid --password "${SUPERSET_ADMIN_PASSWORD:-admin}" || true
superset init
python /app/eventpipe/bundle.py /tmp/eventpipe-superset.zip
superset import-dashboards --path /tmp/eventpipe-superset.zip --username admin
echo "eventpipe dashboard imported: http://localhost:8088/superset/dashboard/eventpipe/"
