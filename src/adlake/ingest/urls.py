"""Which URLs adlake fetches: one definition for the manifest check, every redirect hop and the download.

``url_problem`` is lexical: it says why a URL is refused (a ``bad_url``) without touching the network
or the file system, so the Spark filter and the crawler agree on every row. ``open_confined`` is the
file-system half for ``file://``: the path is resolved, must stay under one of ``ingest.file_roots``
and must be a regular file; the file is opened without following a last link and without blocking.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass
from fnmatch import fnmatchcase
from urllib.parse import unquote, urlsplit

import httpx

from adlake.errors import ClassifiedError

WEB = ("http", "https")
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+")  # a DNS name (IDNA-encoded), IPv4 or IPv6


class UrlRejected(ClassifiedError):
    """A URL adlake will not fetch; the message says why."""

    def __init__(self, message: str, error_class: str = "bad_url"):
        super().__init__(error_class, message)


@dataclass(frozen=True)
class UrlRules:
    allowed_schemes: tuple[str, ...] = ("http", "https", "s3", "gs")
    allowed_hosts: tuple[str, ...] = ()  # host patterns (fnmatch, lower case); empty: any host
    file_roots: tuple[str, ...] = ()  # absolute folders file:// may read under; empty: no file:// at all
    max_length: int = 2048

    @classmethod
    def of(cls, ingest) -> UrlRules:
        """The rules of an ``IngestConf``."""
        return cls(allowed_schemes=tuple(ingest.allowed_schemes), allowed_hosts=tuple(ingest.allowed_hosts),
                   file_roots=tuple(ingest.file_roots), max_length=ingest.max_url_length)


def _controls(url: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in url)


def url_problem(url: object, rules: UrlRules) -> str | None:
    """Why ``url`` is not fetchable under ``rules`` (None: it is). Never raises."""
    try:
        _check(url, rules)
    except UrlRejected as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - any parser failure is a bad URL, never a crash
        return f"cannot be parsed ({type(e).__name__}: {e})"
    return None


def check_url(url: object, rules: UrlRules) -> None:
    problem = url_problem(url, rules)
    if problem is not None:
        raise UrlRejected(problem)


def _check(url: object, rules: UrlRules) -> None:
    if not isinstance(url, str) or not url:
        raise UrlRejected("is not a string")
    if len(url) > rules.max_length:
        raise UrlRejected(f"is {len(url):,} characters long (limit {rules.max_length:,})")
    if _controls(url):
        raise UrlRejected("contains control characters")
    if url != url.strip():
        raise UrlRejected("has leading or trailing whitespace")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in rules.allowed_schemes:
        raise UrlRejected(f"scheme {scheme or '(none)'!r} is not allowed (allowed: {sorted(rules.allowed_schemes)})")
    try:
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError as e:
        raise UrlRejected(f"bad port: {e}") from None
    if scheme == "file":
        local_path(url, rules)
        return
    if scheme in WEB:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError, TypeError) as e:
            raise UrlRejected(f"not a valid URL: {e}") from None
        host = parsed.host
        if not host:
            raise UrlRejected("has no host")
        if not _HOST.fullmatch(parsed.raw_host.decode("ascii", "replace")):
            raise UrlRejected(f"bad host {host!r}")
        if not parts.path.strip("/"):
            raise UrlRejected("has no path")
    else:  # object stores: s3://bucket/key, gs://bucket/key
        host = parts.netloc
        if not host or not parts.path.strip("/"):
            raise UrlRejected("needs a bucket and a key")
    host = host.lower().rstrip(".")
    if rules.allowed_hosts and not any(fnmatchcase(host, p.lower()) for p in rules.allowed_hosts):
        raise UrlRejected(f"host {host!r} is not in ingest.allowed_hosts")


def local_path(url: str, rules: UrlRules) -> str:
    """The normalised path of a ``file://`` URL, lexically under one of the allowed roots."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise UrlRejected(f"file URL names another host ({parts.netloc!r})")
    if parts.query or parts.fragment:
        raise UrlRejected("file URL has a query or fragment")
    path = unquote(parts.path)
    if not path.startswith("/") or "\x00" in path:
        raise UrlRejected("file URL needs an absolute path")
    norm = posixpath.normpath(path)
    if not rules.file_roots:
        raise UrlRejected("file URLs are not allowed here (ingest.file_roots is empty)")
    if not any(_under(norm, root) for root in rules.file_roots):
        raise UrlRejected(f"{norm} is outside ingest.file_roots")
    return norm


def _under(path: str, root: str) -> bool:
    root = posixpath.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")


def open_confined(url: str, rules: UrlRules) -> int:
    """Open a ``file://`` URL for reading under the allowed roots; returns a file descriptor.

    The path is resolved with every link followed and must still be under a root (itself resolved);
    the resolved path is opened with ``O_NOFOLLOW | O_NONBLOCK`` (so a FIFO cannot block the open),
    and what was opened must be a regular file under a root.
    """
    path = local_path(url, rules)
    roots = [os.path.realpath(r) for r in rules.file_roots]
    real = os.path.realpath(path)
    if not any(_under(real, r) for r in roots):
        raise UrlRejected(f"{path} resolves to {real}, outside ingest.file_roots")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise UrlRejected(f"no such file: {path}", "not_found") from None
    except PermissionError:
        raise UrlRejected(f"permission denied: {path}", "forbidden") from None
    except OSError as e:  # ELOOP (a link swapped in), ENXIO (a socket), ...
        raise UrlRejected(f"cannot open {path}: {e.strerror}") from None
    try:
        info = os.fstat(fd)
        opened = _fd_path(fd) or real
        if not stat.S_ISREG(info.st_mode):
            raise UrlRejected(f"{path} is not a regular file")
        if not any(_under(opened, r) for r in roots):
            raise UrlRejected(f"{path} was swapped for {opened}, outside ingest.file_roots")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fd_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def redirect_target(current: httpx.URL, location: str, rules: UrlRules) -> httpx.URL:
    """Where a redirect leads, checked like a manifest URL; only to http(s), never with userinfo."""
    if _controls(location):
        raise UrlRejected("redirect Location contains control characters")
    try:
        target = current.join(location)
    except (httpx.InvalidURL, ValueError, TypeError) as e:
        raise UrlRejected(f"redirect to an invalid URL {location[:200]!r}: {e}") from None
    if target.scheme not in WEB:
        raise UrlRejected(f"redirect to a {target.scheme or 'relative'!r} URL is refused ({location[:200]!r})")
    target = target.copy_with(username=None, password=None, fragment=None)
    problem = url_problem(str(target), rules)
    if problem is not None:
        raise UrlRejected(f"redirect to {str(target)[:200]!r}: {problem}")
    return target


def redact(url: str) -> str:
    """A URL fit for logs and messages: userinfo removed."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
