"""One HTTP client for every source kcrush-feeds reads from the network.

Built on httpx, with the manners a polite crawler needs and the limits a cron job needs:

- a User-Agent naming the tool, its version and where to read about it;
- connect and read timeouts (a hung server never hangs ``schedule``);
- retries with exponential backoff on 429 and 5xx replies and on dropped connections,
  honouring ``Retry-After`` up to a cap (a server asking for more than the cap is not
  hammered: the fetch fails and a later run tries again);
- gzip/deflate (httpx asks for and decodes them);
- redirects followed here, not by httpx, so that a loop is named as a loop and the chain
  is limited to ``max_redirects`` hops;
- the body is streamed and the fetch aborted once it passes ``max_bytes`` (counted after
  decompression, so a gzip bomb is caught too);
- TLS certificates verified (httpx's default, never turned off here).

Every failure is a ``FetchError`` whose message names the URL and, when there was one,
the HTTP status.
"""

from __future__ import annotations

import email.utils
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import unquote

import httpx

from kcrush_feeds import __version__
from kcrush_feeds.errors import KcrushError

log = logging.getLogger("kcrush_feeds.sources.http")

# Names the tool, its version and who runs it, so a site owner reading logs knows whom to ask.
USER_AGENT = f"kcrush-feeds/{__version__} (+https://www.kcrush.com)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MB = 1024 * 1024


class FetchError(KcrushError, ConnectionError):
    """A URL could not be fetched: network trouble, an HTTP error status, or a limit hit."""

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        status: int | None = None,
        body: bytes = b"",
        hint: str | None = None,
    ) -> None:
        shown = unquote(url)  # for people: "_embed=author,wp:term", not "author%2Cwp%3Aterm"
        where = f"{shown}: HTTP {status}" if status is not None else shown
        super().__init__(f"{where}: {reason}" if reason else where, hint=hint)
        self.url = url
        self.status = status
        self.reason = reason
        self.body = body  # the first bytes of an error reply (WordPress explains itself in JSON)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Limits of the client; the defaults suit a weekly or quarter-hourly import."""

    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    retries: int = 3  # further attempts after the first
    backoff: float = 1.0  # seconds before the first retry; doubled each time
    max_retry_after: float = 120.0  # the longest Retry-After we wait for
    max_bytes: int = 20 * MB
    max_redirects: int = 5


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response: the final URL (after redirects), status, headers and body."""

    url: str
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes
    attempts: int = 1

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class HttpClient:
    """A reusable client (one connection pool). Use as a context manager or call close()."""

    settings: HttpSettings = field(default_factory=HttpSettings)
    sleep: Callable[[float], None] = time.sleep
    _client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self._client = httpx.Client(
            headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(s.read_timeout, connect=s.connect_timeout),
            follow_redirects=False,  # followed by hand: see _send_following
            verify=True,
            trust_env=True,  # honour HTTPS_PROXY / SSL_CERT_FILE like other tools do
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Response:
        """GET ``url``; a 2xx or 304 reply, or ``FetchError``.

        Retries 429/5xx replies and transport errors with backoff; follows redirects.
        ``auth`` (HTTP Basic) is sent only to the origin of ``url``, never after a
        redirect to another host.
        """
        try:
            request_url = str(httpx.URL(url, params=dict(params) if params else None))
        except httpx.InvalidURL as e:
            raise FetchError(url, f"not a valid URL: {e}") from e
        s = self.settings
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send_following(request_url, headers or {}, auth)
            except _Retryable as e:
                if attempt > s.retries:
                    raise FetchError(
                        e.url,
                        f"{e.reason} (gave up after {attempt} attempts)",
                        status=e.status,
                        body=e.body,
                        hint="a later run will try again",
                    ) from e
                delay = self._delay(attempt, e.retry_after, e)
                log.info("%s: %s; retrying in %.1f s", e.url, e.reason, delay)
                self.sleep(delay)
                continue
            return Response(
                response.url, response.status, response.headers, response.body, attempts=attempt
            )

    # --- internals --------------------------------------------------------------------

    def _delay(self, attempt: int, retry_after: float | None, error: _Retryable) -> float:
        s = self.settings
        if retry_after is not None:
            if retry_after > s.max_retry_after:
                raise FetchError(
                    error.url,
                    f"{error.reason}; the server asks to wait {retry_after:.0f} s, "
                    f"more than the {s.max_retry_after:.0f} s this tool waits",
                    status=error.status,
                    hint="a later run will try again",
                )
            return retry_after
        # Exponential backoff with a little jitter so parallel clients do not stampede.
        return float(s.backoff * 2 ** (attempt - 1) * (1 + random.random() * 0.1))

    def _send_following(
        self, url: str, headers: Mapping[str, str], auth: tuple[str, str] | None
    ) -> Response:
        seen = [url]
        origin = httpx.URL(url).copy_with(path="/", query=None, fragment=None)
        request = self._client.build_request("GET", url, headers=headers)
        while True:
            same_origin = request.url.copy_with(path="/", query=None, fragment=None) == origin
            result = self._send_one(request, auth if same_origin else None)
            if isinstance(result, Response):
                return result
            next_url = str(result.url)
            if result.url.scheme not in ("http", "https"):
                raise FetchError(seen[-1], f"redirected to {next_url}, which is not http(s)")
            if next_url in seen:
                chain = " -> ".join([*seen[seen.index(next_url) :], next_url])
                raise FetchError(seen[0], f"redirect loop: {chain}")
            if len(seen) > self.settings.max_redirects:
                raise FetchError(
                    seen[0],
                    f"more than {self.settings.max_redirects} redirects (last to {next_url})",
                )
            seen.append(next_url)
            request = result

    def _send_one(
        self, request: httpx.Request, auth: tuple[str, str] | None
    ) -> Response | httpx.Request:
        """One exchange: a final Response, the next Request of a redirect, or _Retryable."""
        url = str(request.url)
        limit = self.settings.max_bytes
        try:
            response = self._client.send(request, stream=True, auth=auth)
        except httpx.TimeoutException as e:
            raise _Retryable(url, f"timed out ({type(e).__name__})") from e
        except httpx.ConnectError as e:
            if _is_tls_failure(e):
                # A certificate problem will not go away in a few seconds: no retry.
                raise FetchError(
                    url,
                    f"connection failed: {e}",
                    hint="the site's TLS certificate cannot be verified; "
                    "for a private CA set SSL_CERT_FILE",
                ) from e
            raise _Retryable(url, f"connection failed: {e or type(e).__name__}") from e
        except httpx.TransportError as e:
            raise _Retryable(url, f"connection failed: {e or type(e).__name__}") from e
        try:
            status = response.status_code
            if response.next_request is not None and status in (301, 302, 303, 307, 308):
                return response.next_request
            if status in RETRY_STATUSES:
                body = _read_some(response, 2048)
                raise _Retryable(
                    url,
                    response.reason_phrase or "server error",
                    status=status,
                    retry_after=_retry_after(response.headers.get("retry-after")),
                    body=body,
                )
            if status == 304:
                return Response(url, status, _headers(response), b"")
            if not 200 <= status < 300:
                body = _read_some(response, 2048)
                raise FetchError(url, response.reason_phrase or "error", status=status, body=body)
            declared = response.headers.get("content-length")
            if (
                declared
                and declared.isdigit()
                and int(declared) > limit
                and not response.headers.get("content-encoding")
            ):
                raise FetchError(
                    url,
                    f"the response is {int(declared) / MB:.1f} MB, over "
                    f"the {limit / MB:.0f} MB limit",
                    status=status,
                )
            chunks: list[bytes] = []
            size = 0
            try:
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise FetchError(
                            url,
                            f"the response is over the {limit / MB:.0f} MB limit; stopped reading",
                            status=status,
                        )
                    chunks.append(chunk)
            except httpx.TimeoutException as e:
                raise _Retryable(url, "timed out while reading the body") from e
            except httpx.DecodingError as e:
                raise FetchError(url, f"the body cannot be decoded: {e}", status=status) from e
            except httpx.TransportError as e:
                raise _Retryable(url, f"connection lost while reading the body: {e}") from e
            return Response(url, status, _headers(response), b"".join(chunks))
        finally:
            response.close()


class _Retryable(Exception):
    def __init__(
        self,
        url: str,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(reason)
        self.url = url
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.body = body


def _is_tls_failure(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


def _headers(response: httpx.Response) -> dict[str, str]:
    return {name.lower(): value for name, value in response.headers.items()}


def _read_some(response: httpx.Response, limit: int) -> bytes:
    """The start of an error body, for the message; never the whole of a huge one."""
    data = b""
    try:
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= limit:
                break
    except httpx.HTTPError:
        pass
    return data[:limit]


def _retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    # An HTTP-date is relative to the wall clock by definition, so the clock is read here.
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
