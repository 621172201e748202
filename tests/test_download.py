"""The downloader: retries only where they can help, limits, timeouts, sizes, content addressing."""

from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

from adlake.config import load_settings
from adlake.ingest.download import Downloader, Fetched, FetchError, download_all
from adlake.ingest.urls import UrlRules
from adlake.media.store import MediaStore
from tests.httpserver import Route, ScriptedServer


@pytest.fixture
def settings(home):
    return load_settings()


def run(settings, urls):
    return asyncio.run(download_all(MediaStore(settings), settings, urls, seed=1))


def test_content_addressed_and_shared_by_identical_bytes(settings) -> None:
    body = random.Random(1).randbytes(300_000)
    with ScriptedServer() as srv:
        srv.routes["/a.mp4"] = Route(body)
        srv.routes["/b.mp4"] = Route(body)
        got = run(settings, [f"{srv.url}/a.mp4", f"{srv.url}/b.mp4"])
    a, b = got[f"{srv.url}/a.mp4"], got[f"{srv.url}/b.mp4"]
    assert isinstance(a, Fetched) and isinstance(b, Fetched)
    assert a.video_id == b.video_id == hashlib.sha256(body).hexdigest()
    store = MediaStore(settings)
    assert [p.rsplit("/", 1)[1] for p in store.files()] == [a.video_id]
    assert store.path(a.key).read_bytes() == body
    assert not list(store.tmp_dir().iterdir())  # no temporary leftovers


def test_no_retry_on_4xx(settings) -> None:
    with ScriptedServer() as srv:
        srv.routes["/gone.mp4"] = Route(b"x", statuses=[410])
        got = run(settings, [f"{srv.url}/gone.mp4", f"{srv.url}/missing.mp4"])
    assert srv.hits == {"/gone.mp4": 1, "/missing.mp4": 1}
    for err in got.values():
        assert isinstance(err, FetchError) and err.error_class == "http_error"


def test_5xx_is_retried_with_backoff_then_succeeds_or_gives_up(settings) -> None:
    retries = settings.ingest.crawl.retries
    with ScriptedServer() as srv:
        srv.routes["/flaky.mp4"] = Route(b"ok" * 100, statuses=[503, 502])
        srv.routes["/down.mp4"] = Route(b"x", statuses=[500] * 10)
        got = run(settings, [f"{srv.url}/flaky.mp4", f"{srv.url}/down.mp4"])
    assert isinstance(got[f"{srv.url}/flaky.mp4"], Fetched) and got[f"{srv.url}/flaky.mp4"].attempts == 3
    down = got[f"{srv.url}/down.mp4"]
    assert isinstance(down, FetchError) and down.error_class == "server_error"
    assert srv.hits["/down.mp4"] == 1 + retries
    assert f"after {1 + retries} attempts" in str(down)


def test_read_timeout_is_a_timeout_and_retried(settings) -> None:
    settings.ingest.crawl.read_timeout_s = 0.3
    with ScriptedServer() as srv:
        srv.routes["/slow.mp4"] = Route(b"x" * 10, delay_s=1.0)
        got = run(settings, [f"{srv.url}/slow.mp4"])
    err = got[f"{srv.url}/slow.mp4"]
    assert isinstance(err, FetchError) and err.error_class == "timeout"
    assert srv.hits["/slow.mp4"] == 1 + settings.ingest.crawl.retries


def test_a_drip_fed_body_hits_the_deadline(settings) -> None:
    settings.ingest.crawl.deadline_s = 0.5
    settings.ingest.crawl.retries = 0
    with ScriptedServer() as srv:
        srv.routes["/drip.mp4"] = Route(b"x" * 4000, chunk=100, chunk_delay_s=0.1)
        got = run(settings, [f"{srv.url}/drip.mp4"])
    assert got[f"{srv.url}/drip.mp4"].error_class == "timeout"


def test_connection_refused_is_a_connection_error(settings) -> None:
    with ScriptedServer() as srv:
        url = f"{srv.url}/x.mp4"
    got = run(settings, [url])  # the server is gone
    assert got[url].error_class == "connection_error"


def test_too_large_by_header_and_by_stream(settings) -> None:
    settings.ingest.crawl.max_bytes = 1000
    with ScriptedServer() as srv:
        srv.routes["/big.mp4"] = Route(b"x" * 5000)
        srv.routes["/big_chunked.mp4"] = Route(b"x" * 5000, content_length=False, chunk=500)
        got = run(settings, [f"{srv.url}/big.mp4", f"{srv.url}/big_chunked.mp4"])
    assert {e.error_class for e in got.values()} == {"too_large"}
    assert srv.hits["/big.mp4"] == 1  # not retried
    assert not MediaStore(settings).files()


def test_only_allowed_schemes(settings, tmp_path) -> None:
    settings.ingest.allowed_schemes = ["http", "https"]
    local = tmp_path / "v.mp4"
    local.write_bytes(b"abc")
    got = run(settings, [local.as_uri(), "ftp://127.0.0.1/v.mp4"])
    assert {e.error_class for e in got.values()} == {"bad_url"}
    settings.ingest.allowed_schemes = ["file"]
    assert run(settings, [local.as_uri()])[local.as_uri()].error_class == "bad_url"  # no file_roots: no file://
    settings.ingest.file_roots = [str(tmp_path)]
    ok = run(settings, [local.as_uri()])[local.as_uri()]
    assert isinstance(ok, Fetched) and ok.bytes == 3


def test_per_host_limit_holds(settings) -> None:
    settings.ingest.crawl.per_host = 2
    with ScriptedServer() as srv:
        for i in range(8):
            srv.routes[f"/{i}.mp4"] = Route(bytes([i]) * 1000, delay_s=0.2)
        got = run(settings, [f"{srv.url}/{i}.mp4" for i in range(8)])
    assert all(isinstance(v, Fetched) for v in got.values())
    assert srv.max_active == 2


def test_a_rerun_skips_finished_downloads(settings) -> None:
    with ScriptedServer() as srv:
        srv.routes["/a.mp4"] = Route(b"a" * 1000)
        run(settings, [f"{srv.url}/a.mp4"])
        again = run(settings, [f"{srv.url}/a.mp4"])[f"{srv.url}/a.mp4"]
    assert again.cached and srv.hits["/a.mp4"] == 1


def test_backoff_is_full_jitter_and_capped(settings) -> None:
    conf = settings.ingest.crawl
    conf.backoff_base_s, conf.backoff_max_s = 0.5, 4.0
    d = Downloader(MediaStore(settings), conf, UrlRules(("http",)), seed=3)
    for attempt in range(8):
        waits = [d.backoff(attempt) for _ in range(200)]
        cap = min(4.0, 0.5 * 2 ** attempt)
        assert 0 <= min(waits) and max(waits) <= cap
        assert max(waits) > cap * 0.8  # spread over the whole range, not a fixed delay


def test_an_unanswering_media_store_fails_the_crawl_and_blames_no_url(settings) -> None:
    """Nothing listens where the store should be: an outage to retry (ServiceUnavailable), never a
    per-URL error that would quarantine the ads."""
    import socket

    from adlake.errors import ServiceUnavailable
    from adlake.parse.batch import attempt

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: connections are refused
    settings.media.uri = "s3://adlake/media"
    settings.media.storage_options = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "k", "secret": "s",
                                      "config_kwargs": {"connect_timeout": 1, "retries": {"total_max_attempts": 1}}}
    with ScriptedServer() as srv:
        srv.routes["/a.mp4"] = Route(b"x" * 1000)
        with pytest.raises(ServiceUnavailable, match="media store s3://adlake/media"):
            run(settings, [f"{srv.url}/a.mp4"])
    # a parse of a video whose blob cannot be read fails its task too, instead of quarantining the video
    with pytest.raises(ServiceUnavailable):
        attempt(lambda: MediaStore(settings).local_copy("videos/ab/abc"))
    assert attempt(lambda: 1 / 0)[1]["error_class"] == "parse_ZeroDivisionError"  # a bad video still is its own
    # a bug under a store call is not an outage: it is raised as itself, not retried as ServiceUnavailable
    with pytest.raises(TypeError):
        MediaStore(settings).put_bytes("text, not bytes", "videos")


def test_the_planner_stays_within_airflows_mapped_task_limit(settings) -> None:
    from adlake.ingest.crawl import shard_count

    assert settings.ingest.crawl.max_shards == 1024
    conf = settings.ingest.crawl.model_copy(update={"shard_size": 500})  # base.yaml's (the test profile: 8)
    assert [shard_count(n, conf) for n in (0, 1, 500, 501, 10_000)] == [1, 1, 1, 2, 20]
    assert shard_count(1_570_000, conf) == 1024  # 1,534 ads per shard, not 49,063 in 32
    assert -(-1_570_000 // shard_count(1_570_000, conf)) == 1534
