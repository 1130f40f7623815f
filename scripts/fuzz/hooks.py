"""Schemathesis hooks: the rules of eventpipe's query parameters that an
OpenAPI schema cannot state, each also written in its operation's
description. Generated cases that break one are dropped before they are
sent (in every generation mode), so a 400 for one of them is never counted
as a schema-valid request refused. Nothing else is filtered.

- a range's `from` must be before its `to` (analytics ranges default `to`
  to now and `from` to 24 hours before `to`; lists leave either end open);
- a time series takes `interval` or `interval_ms`, not both, and at most
  WORKER_ANALYTICS_MAX_BUCKETS buckets;
- an event's `timestamp` is at most EVENT_MAX_FUTURE_SECS ahead of the
  server clock, and its payload holds no `\u0000` (PostgreSQL cannot
  store it);
- an integer (a numeric `user_id`, epoch-milliseconds `timestamp`,
  `payload.status_code`) is written as one: `200`, not `200.0`, which JSON
  Schema counts as an integer too.

It also frames `application/x-ndjson` bodies: the document describes one as
the array of its lines, and each element is sent as one line.
"""

import json
import os
import re
import time

import schemathesis

MAX_FUTURE_MS = int(os.environ.get("EVENT_MAX_FUTURE_SECS", "300")) * 1000
MAX_BUCKETS = int(os.environ.get("WORKER_ANALYTICS_MAX_BUCKETS", "10000"))
INTERVALS_MS = {
    "1m": 60_000, "5m": 300_000, "10m": 600_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "6h": 21_600_000, "12h": 43_200_000, "1d": 86_400_000,
}
DAY_MS = 86_400_000
RFC3339 = re.compile(
    r"^([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (year 0 too)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def instant_ms(value):
    """Epoch milliseconds of a `from`/`to` value; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    if text.isascii() and text.isdigit():
        return int(text)
    m = RFC3339.match(text)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = m.group(7) or ""
    ms = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + min(s, 59)) * 1000
    ms += int((frac[1:] + "000")[:3]) if frac else 0
    zone = m.group(8)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        ms -= sign * (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000
    return ms


def snapped(ms: int) -> int:
    return next((w for w in INTERVALS_MS.values() if w >= ms), DAY_MS)


@schemathesis.serializer("application/x-ndjson")
def ndjson(context, value):
    lines = value if isinstance(value, list) else [value]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def events_of(body):
    if isinstance(body, list):
        return [e for e in body if isinstance(e, dict)]
    return [body] if isinstance(body, dict) else []


def acceptable_event(event) -> bool:
    payload = event.get("payload")
    integers = [event.get("user_id"), event.get("timestamp")]
    if isinstance(payload, dict):
        integers.append(payload.get("status_code"))
    if any(isinstance(v, float) for v in integers):
        return False
    stamp = event.get("timestamp")
    at = instant_ms(stamp) if not isinstance(stamp, bool) else None
    # With a minute of slack for the time between generating and sending.
    if at is not None and at > time.time() * 1000 + MAX_FUTURE_MS - 60_000:
        return False
    return "\\u0000" not in json.dumps(event.get("payload"))


@schemathesis.hook
def filter_case(context, case):
    path = case.operation.path
    if path == "/events":
        return all(acceptable_event(e) for e in events_of(case.body))
    query = case.query or {}
    if not isinstance(query, dict):
        return True
    frm, to = instant_ms(query.get("from")), instant_ms(query.get("to"))
    if path.startswith("/api/v1/analytics/"):
        now = int(time.time() * 1000)
        to = now if to is None else to
        frm = to - DAY_MS if frm is None else frm
        if frm >= to:
            return False
        if path.endswith("/timeseries"):
            interval, interval_ms = query.get("interval"), query.get("interval_ms")
            if not isinstance(interval, (str, type(None))):
                return True
            if interval not in (None, "") and interval_ms not in (None, ""):
                return False
            if interval in INTERVALS_MS:
                width = INTERVALS_MS[interval]
            elif isinstance(interval_ms, int) and not isinstance(interval_ms, bool) and interval_ms > 0:
                width = snapped(interval_ms)
            else:
                width = None
            # The automatic width stays under 200 buckets up to a day wide.
            width = width or (DAY_MS if (to - frm) / DAY_MS > 200 else None)
            if width and (to - frm) // width + 2 > MAX_BUCKETS:
                return False
    elif frm is not None and to is not None and frm >= to:
        return False
    return True
