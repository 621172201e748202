"""One definition of a fetchable URL and of a valid manifest row, checked on generated input (hypothesis)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adlake.config import RerunConf
from adlake.ingest.crawl import retry_due
from adlake.ingest.download import awaiting_daemon_thread
from adlake.ingest.manifest import OPTIONAL, REQUIRED, TYPED_COLUMNS, TYPED_SCHEMA, check_rows, rows_frame
from adlake.ingest.urls import UrlRules, redirect_target, url_problem

RULES = UrlRules(allowed_schemes=("http", "https", "s3", "file"), file_roots=("/data/ads",))
PIECES = st.sampled_from(["http://", "https://", "file://", "s3://", "ftp://", "javascript:", "HTTP://", "//", "",
                          "127.0.0.1", "cdn.example.com", ":80", ":99999", ":-1", ":0x50", "user:pw@", "@", "[::1]",
                          "[::1", "/data/ads/", "/data/ads/../../etc/passwd", "/a.mp4", "?q=1", "#f", "%00", "%2e%2e/",
                          " ", "\t", "\n", "\x00", "\x7f", "é", "ß", "😀", "\\", "..", "a" * 300, "localhost"])
URLS = st.one_of(st.lists(PIECES, max_size=8).map("".join), st.text(max_size=60))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(URLS)
def test_an_accepted_url_is_one_the_client_can_request(url: str) -> None:
    problem = url_problem(url, RULES)  # never raises
    if problem is not None:
        return
    parts = urlsplit(url)
    assert parts.scheme.lower() in RULES.allowed_schemes
    assert parts.port is None or 0 <= parts.port <= 65535
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in url)
    if parts.scheme.lower() in ("http", "https"):
        request = httpx.Client().build_request("GET", url)
        assert request.url.host
    if parts.scheme.lower() == "file":
        assert not parts.netloc or parts.netloc == "localhost"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_a_redirect_leads_only_to_a_checked_http_url(location: str) -> None:
    current = httpx.URL("http://ann:pw@127.0.0.1:8000/a/b.mp4")
    try:
        target = redirect_target(current, location, RULES)
    except Exception as e:  # noqa: BLE001 - the only allowed failure is a classified refusal
        assert getattr(e, "error_class", None) == "bad_url", repr(e)
        return
    assert target.scheme in ("http", "https") and not target.userinfo
    assert url_problem(str(target), RULES) is None


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=6)
VALUES = {
    "ad_id": st.one_of(JSON, st.text(min_size=1, max_size=8)),
    "url": st.one_of(JSON, URLS, st.just("https://cdn.example.com/v.mp4")),
    "product_id": st.one_of(JSON, st.just("p1")), "product_name": st.one_of(JSON, st.just("Lamp")),
    "selling_points": st.one_of(JSON, st.lists(st.text(max_size=6), max_size=3), st.just("a|b")),
    "play_count": st.one_of(JSON, st.integers(min_value=-(2**70), max_value=2**70), st.just("12"), st.just("1e30")),
    "like_count": JSON, "duration_s": st.one_of(JSON, st.just("Infinity")),
    "published_at": st.one_of(JSON, st.just("2026-01-01T00:00:00Z"), st.just("9999-12-31"), st.just("0001-01-01")),
    "industry": JSON, "advertiser_id": JSON, "title": JSON,
}
ROWS = st.lists(st.fixed_dictionaries({}, optional=VALUES), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ROWS)
def test_whatever_passes_the_checks_the_tables_can_hold(rows: list[dict]) -> None:
    out = check_rows(rows_frame(rows, [None] * len(rows)), list(RULES.allowed_schemes))  # never raises
    assert len(out) == len(rows)
    valid = out[out["error_class"].isna()]
    pa.Table.from_pandas(valid[list(TYPED_COLUMNS)], schema=TYPED_SCHEMA, preserve_index=False)
    for _, row in valid.iterrows():
        assert all(row[c] is not None and str(row[c]).strip() for c in REQUIRED)
    assert set(out.columns) >= {*TYPED_COLUMNS, "error_class", "error_message", "payload"}
    assert set(OPTIONAL) <= set(out.columns)


def test_a_blocking_read_cannot_outlive_its_deadline() -> None:
    t0 = time.monotonic()

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(awaiting_daemon_thread(lambda cancel: time.sleep(60)), 0.3)
    asyncio.run(main())  # a default-executor thread would hold asyncio.run for the whole minute
    assert time.monotonic() - t0 < 5


def entry(error_class: str, attempts: int, hours_ago: float, url: str = "https://x/y.mp4") -> dict:
    return {"error_class": error_class, "attempts": attempts, "payload": f'{{"url": "{url}"}}',
            "last_seen": dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)}


def test_rerun_policy_retries_transient_failures_with_backoff_only() -> None:
    conf, now, url = RerunConf(), dt.datetime.now(dt.UTC), "https://x/y.mp4"
    assert not retry_due(entry("http_error", 1, 1000), url, conf, now)  # a 404 stays put
    assert retry_due(entry("http_error", 1, 0), "https://x/fixed.mp4", conf, now)  # unless the URL changed
    assert not retry_due(entry("timeout", 1, 0.5), url, conf, now)  # backoff_s = 1 h after one failed run
    assert retry_due(entry("timeout", 1, 1.01), url, conf, now)
    assert not retry_due(entry("timeout", 3, 3.9), url, conf, now)  # 4 h after three
    assert retry_due(entry("timeout", 3, 4.01), url, conf, now)
    assert not retry_due(entry("timeout", conf.max_attempts, 10_000), url, conf, now)
