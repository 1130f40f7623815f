"""Asks a running Superset for the data of every chart of the eventpipe
dashboard through the REST API, as the dashboard would, and compares what
each chart shows with the same question asked of PostgreSQL directly.

    python deploy/superset/check_charts.py http://127.0.0.1:8088 admin PASSWORD \\
        postgresql://postgres@127.0.0.1:5432/eventpipe_superset_check

Exits non-zero if the dashboard is missing, a chart errors, a chart's time
range does not end at now, a chart has no expectation here, or a chart's
numbers differ from PostgreSQL's. Row counts prove nothing (a big number
returns one row even when it is empty), so every check compares values.

The scratch data (scripts/superset-check) keeps clear of the range edges
(24 hours and 7 days before now, give or take two hours), so the few
seconds between Superset's "now" and PostgreSQL's do not move any number.
"""

import json
import math
import sys
import time
import urllib.error
import urllib.request

import psycopg2

DAY = "now() - interval '1 day'"
WEEK = "now() - interval '7 days'"


def in_range(column, since):
    return f"{column} >= {since} AND {column} < now()"


def call(base, path, token=None, body=None):
    request = urllib.request.Request(base + path, method="POST" if body is not None else "GET")
    if body is not None:
        # Only with a body: Flask refuses a GET that claims JSON and has none.
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(request, data, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def sql_rows(db, query):
    with db.cursor() as cursor:
        cursor.execute(query)
        return cursor.fetchall()


def close(a, b):
    return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# Each check takes the chart's rows and the database and returns
# (ok, what it compared) for the report.

def big_number_last_day(rows, db):
    [[expected]] = sql_rows(db, f"SELECT count(*) FROM events WHERE {in_range('event_ts', DAY)}")
    shown = rows[0].get("events") if len(rows) == 1 else None
    return shown == expected and expected > 0, f"shows {shown}, events in the last 24 h: {expected}"


def per_minute_by_type(rows, db):
    expected = dict(sql_rows(db, f"SELECT event_type, count(*) FROM events WHERE {in_range('event_ts', DAY)} GROUP BY 1"))
    shown = {}
    for row in rows:
        for column, value in row.items():
            if column != "bucket_start" and value is not None and not (isinstance(value, float) and math.isnan(value)):
                shown[column] = shown.get(column, 0) + value
    return (shown == expected and bool(expected),
            f"per-type sums {sum(shown.values())} over {len(rows)} minute(s), events in the last 24 h: {sum(expected.values())}")


def ingest_lag(rows, db):
    expected = {
        int(minute): (p50, p95)
        for minute, p50, p95 in sql_rows(db, f"""
            SELECT extract(epoch FROM date_trunc('minute', event_ts)) * 1000,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - received_at)),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM stored_at - received_at))
            FROM events WHERE {in_range('event_ts', DAY)} GROUP BY 1""")
    }
    shown = {int(row["event_ts"]): (row.get("ingest_lag_p50"), row.get("ingest_lag_p95")) for row in rows}
    differing = [m for m in expected if m not in shown or not all(map(close, shown[m], expected[m]))]
    ok = bool(expected) and not differing and shown.keys() == expected.keys()
    return ok, (f"{len(shown)} minute(s) with p50/p95, {len(expected)} in PostgreSQL"
                + (f", {len(differing)} differ (first at {min(differing)} ms)" if differing else ""))


def top_types_last_week(rows, db):
    expected = dict(sql_rows(db, f"""
        SELECT event_type, count(*) FROM events WHERE {in_range('event_ts', WEEK)}
        GROUP BY 1 ORDER BY 2 DESC LIMIT 10"""))
    shown = {row["event_type"]: row["events"] for row in rows}
    counts = [row["events"] for row in rows]
    ordered = counts == sorted(counts, reverse=True)
    return shown == expected and ordered and bool(expected), f"shows {shown}, PostgreSQL: {expected}"


def anomalies_last_week(rows, db):
    expected = {(r, s): n for r, s, n in sql_rows(db, f"""
        SELECT rule, severity, count(*) FROM anomalies WHERE {in_range('event_ts', WEEK)} GROUP BY 1, 2""")}
    shown = {(row["rule"], row["severity"]): row["count"] for row in rows}
    return shown == expected and bool(expected), f"shows {shown}, PostgreSQL: {expected}"


CHECKS = {
    "Events in the last day": big_number_last_day,
    "Events per minute by type": per_minute_by_type,
    "Ingest lag (received → stored)": ingest_lag,
    "Top event types": top_types_last_week,
    "Anomalies by rule and severity": anomalies_last_week,
}


def ranges_end_at_now(params):
    """The chart's time filters, and whether each ends at now: Superset's
    'Last day'/'Last week' end at the start of today, which hides today."""
    ranges = [f["comparator"] for f in params.get("adhoc_filters", []) if f.get("operator") == "TEMPORAL_RANGE"]
    if params.get("time_range"):
        ranges.append(params["time_range"])
    return ranges, bool(ranges) and all(r.replace(" ", "").lower().endswith(":now") for r in ranges)


def wait_for(base):
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            sys.exit(f"Superset did not answer {base}/health in 120 s")
        time.sleep(1)


def main(base, user, password, database_url):
    wait_for(base)
    db = psycopg2.connect(database_url)
    db.autocommit = True
    status, login = call(base, "/api/v1/security/login",
                         body={"username": user, "password": password, "provider": "db", "refresh": False})
    if status != 200:
        sys.exit(f"login failed: {status} {login}")
    token = login["access_token"]

    status, dashboard = call(base, "/api/v1/dashboard/eventpipe", token)
    if status != 200:
        sys.exit(f"dashboard 'eventpipe' missing: {status} {dashboard}")
    status, charts = call(base, "/api/v1/dashboard/eventpipe/charts", token)
    if status != 200:
        sys.exit(f"dashboard charts: {status} {charts}")
    charts = charts["result"]
    failures = []
    for name in sorted(CHECKS.keys() - {chart["slice_name"] for chart in charts}):
        failures.append(f"{name}: not on the dashboard")
    for chart in charts:
        name = chart["slice_name"]
        ranges, ok = ranges_end_at_now(chart.get("form_data") or {})
        if not ok:
            failures.append(f"{name}: time range {ranges} must end at now (e.g. 'DATEADD(DATETIME(\"now\"), -1, day) : now')")
        check = CHECKS.get(name)
        if check is None:
            failures.append(f"{name}: no expectation in check_charts.py: add one")
            continue
        status, data = call(base, f"/api/v1/chart/{chart['id']}/data/", token)
        if status != 200:
            failures.append(f"{name}: HTTP {status}: {data.get('message') or data}")
            continue
        [result] = data["result"]
        if result.get("error"):
            failures.append(f"{name}: {result['error']}")
            continue
        ok, said = check(result["data"], db)
        if ok:
            print(f"ok   {name} ({ranges}): {said}")
        else:
            failures.append(f"{name} ({ranges}): {said}")
    for failure in failures:
        print(f"FAIL {failure}")
    if failures:
        sys.exit(1)
    print(f"Superset: {len(charts)} charts on the eventpipe dashboard show what PostgreSQL holds for their ranges")


if __name__ == "__main__":
    main(*sys.argv[1:5])
