"""Builds the importable Superset bundle (a ZIP in Superset's export
format) from deploy/superset/bundle, with the dashboards database's
SQLAlchemy URI taken from $DASHBOARDS_DB_URI (it holds a password, so it
is never committed).

    DASHBOARDS_DB_URI=postgresql://eventpipe_dashboards:PW@host:5432/eventpipe \\
        python deploy/superset/bundle.py /tmp/eventpipe-superset.zip
"""

import os
import pathlib
import sys
import zipfile

PLACEHOLDER = "${DASHBOARDS_DB_URI}"


def build(target: str) -> None:
    uri = os.environ.get("DASHBOARDS_DB_URI")
    if not uri:
        sys.exit("DASHBOARDS_DB_URI must be set (the read-only role's SQLAlchemy URI)")
    source = pathlib.Path(__file__).resolve().parent / "bundle"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path in sorted(source.rglob("*.yaml")):
            text = path.read_text(encoding="utf-8")
            if PLACEHOLDER in text:
                text = text.replace(PLACEHOLDER, uri)
            # Superset wants every file under one top-level folder.
            bundle.writestr(f"eventpipe/{path.relative_to(source)}", text)


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "eventpipe-superset.zip")
