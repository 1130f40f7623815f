"""Superset settings for eventpipe's dashboards (docker-compose and
scripts/superset-check). Everything secret comes from the environment."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]

# Superset's own metadata (users, charts, dashboards). SQLite in
# SUPERSET_HOME is enough for one instance; point SUPERSET_METADATA_URI at
# PostgreSQL for more.
SQLALCHEMY_DATABASE_URI = os.environ.get(
    "SUPERSET_METADATA_URI",
    "sqlite:///" + os.path.join(os.environ.get("SUPERSET_HOME", "/app/superset_home"), "superset.db"),
)

# The dashboards read views through a read-only role with a 30 s
# statement timeout; let Superset give up a little later.
SQLLAB_TIMEOUT = 35
SUPERSET_WEBSERVER_TIMEOUT = 60

FEATURE_FLAGS = {"DASHBOARD_NATIVE_FILTERS": True}
