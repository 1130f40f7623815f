"""Asks a running Superset for the data of every chart of the eventpipe
dashboard through the REST API, as the dashboard would; exits non-zero if
one errors, returns no rows, or the dashboard is missing.

    python deploy/superset/check_charts.py http://127.0.0.1:8088 admin PASSWORD
"""

import json
import sys
import time
import urllib.error
import urllib.request

EXPECTED_CHARTS = 5


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


def main(base, user, password):
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(base + "/health", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            sys.exit(f"Superset did not answer {base}/health in 120 s")
        time.sleep(1)

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
    for chart in charts:
        name = chart["slice_name"]
        status, data = call(base, f"/api/v1/chart/{chart['id']}/data/", token)
        if status != 200:
            failures.append(f"{name}: HTTP {status}: {data.get('message') or data}")
            continue
        for result in data["result"]:
            if result.get("error"):
                failures.append(f"{name}: {result['error']}")
            elif not result.get("rowcount"):
                failures.append(f"{name}: no rows")
            else:
                print(f"ok   {name}: {result['rowcount']} row(s)")
    if len(charts) != EXPECTED_CHARTS:
        failures.append(f"the dashboard has {len(charts)} charts, expected {EXPECTED_CHARTS}")
    for failure in failures:
        print(f"FAIL {failure}")
    if failures:
        sys.exit(1)
    print(f"Superset: {len(charts)} charts on the eventpipe dashboard answered with data")


if __name__ == "__main__":
    main(*sys.argv[1:4])
