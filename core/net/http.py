"""All provider traffic goes through ``SafeHttp``: URLs checked before connecting, redirects re-checked,
auth kept to its origin, timeouts fit for multi-GB media, errors mapped to PixSim's tree with redacted
URLs. API calls and uploads use httpx; media bodies use the lean reader in ``core.net.bulk``."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from urllib.parse import urljoin

import httpx

from core.errors import (
    AuthFailed,
    InsufficientBalance,
    InvalidParameter,
    NetworkError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    StaleReference,
    TransferError,
    UnsafeUrl,
)
from core.net.bulk import BulkResponse, default_tls, open_get
from core.net.policy import UrlPolicy, origin_of
from core.net.retry import RetryPolicy, parse_retry_after
from core.redact import redact_text

T = TypeVar("T")

# Connect quickly or not at all; between bytes a CDN may pause, but a minute of silence is a stall.
# No total deadline: a multi-GB video on a slow link legitimately takes long.
DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, read=60.0, write=120.0, pool=120.0)
MAX_REDIRECTS = 5


class SafeHttp:
    def __init__(
        self,
        policy: UrlPolicy | None = None,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        user_agent: str = "PixSim",
        client: httpx.AsyncClient | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy or UrlPolicy()
        self._timeout = timeout
        # None: certifi's CA bundle. Tests pass a context trusting their own local CA.
        self._tls = tls
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            headers={"User-Agent": user_agent, "Accept-Encoding": "identity"},
            verify=tls if tls is not None else True,
        )

    @property
    def tls(self) -> ssl.SSLContext:
        """The TLS context for connections made outside httpx (media bodies, ComfyUI's WebSocket)."""
        return self._tls or default_tls()

    def trusting(self, *urls: str) -> SafeHttp:
        """The same connection pool, also allowing the given local servers (a configured ComfyUI)."""
        return SafeHttp(
            self.policy.with_trusted(*urls), timeout=self._timeout, client=self._client, tls=self._tls
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    @asynccontextmanager
    async def stream(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth_headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[BulkResponse]:
        """A streamed GET of a media body, following up to 5 redirects, each checked before connecting.

        ``auth_headers`` go only to the origin of ``url``: a redirect to a CDN never sees the API key.
        """
        first_origin = origin_of(url)
        for _ in range(MAX_REDIRECTS + 1):
            addresses = await self.policy.check(url)
            request_headers = dict(headers or {})
            if auth_headers and origin_of(url) == first_origin:
                request_headers.update(auth_headers)
            response = await open_get(
                url,
                request_headers,
                connect_timeout=self._timeout.connect or DEFAULT_TIMEOUT.connect or 15.0,
                read_timeout=self._timeout.read or DEFAULT_TIMEOUT.read or 60.0,
                tls=self._tls,
                addresses=[str(a) for a in addresses],
            )
            if response.is_redirect:
                await response.aclose()
                url = urljoin(url, response.headers["location"])
                continue
            try:
                yield response
            finally:
                await response.aclose()
            return
        raise UnsafeUrl(f"Refusing {redact_text(url)}: more than {MAX_REDIRECTS} redirects.")

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """A buffered request (API calls, uploads). Redirects are not followed: a body cannot be replayed."""
        await self.policy.check(url)
        return await _guard(self._client.request(method, url, headers=headers, **kwargs), url)


async def _guard(call: Awaitable[httpx.Response], url: str) -> httpx.Response:
    try:
        return await call
    except httpx.HTTPError as exc:
        raise _network_error(exc, url) from None


def _network_error(exc: httpx.HTTPError, url: str) -> NetworkError:
    shown = redact_text(url)
    # Connecting failed, no connection was free, or the request could not be written in full: no
    # server acts on it. (A read error or timeout comes after the whole request went out.)
    unsent = isinstance(
        exc,
        httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout | httpx.WriteError | httpx.WriteTimeout,
    )
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "connecting timed out",
            httpx.ReadTimeout: "the server stopped sending data",
            httpx.WriteTimeout: "the server stopped accepting data",
            httpx.PoolTimeout: "no connection was free",
        }.get(type(exc), "timed out")
        return NetworkError(f"{kind} ({shown})", maybe_delivered=not unsent)
    if isinstance(exc, httpx.RemoteProtocolError):
        return NetworkError(f"the connection was cut short ({shown}): {redact_text(str(exc))}")
    return NetworkError(
        f"network error ({shown}): {redact_text(str(exc)) or type(exc).__name__}", maybe_delivered=not unsent
    )


def error_for_status(
    status: int,
    headers: Mapping[str, str],
    url: str,
    *,
    provider_id: str | None,
    what: str,
    reason: str = "",
    detail: str | None = None,
) -> ProviderError:
    """Map an HTTP error status to the error tree (retryable / permanent / stale)."""
    tail = f": {redact_text(detail)}" if detail else ""
    who = provider_id or origin_of(url)[1]
    message = f"{who} answered {status} {reason} to {what}{tail}".replace("  ", " ")
    code = str(status)
    lowered = {k.lower(): v for k, v in headers.items()}
    retry_after = parse_retry_after(lowered.get("retry-after"))
    retry_ms = lowered.get("retry-after-ms")
    if retry_ms is not None:
        with contextlib.suppress(ValueError):
            retry_after = float(retry_ms) / 1000
    if status == 429:
        return RateLimited(message, provider_id=provider_id, code=code, retry_after=retry_after)
    if status in (408, 409, 425) or status >= 500:
        return ProviderUnavailable(message, provider_id=provider_id, code=code, retry_after=retry_after)
    if status in (401, 403):
        return AuthFailed(
            f"{message}. Check the API key of this {who} account.", provider_id=provider_id, code=code
        )
    if status == 402:
        return InsufficientBalance(message, provider_id=provider_id, code=code)
    if status in (404, 410):
        return StaleReference(message, provider_id=provider_id, code=code)
    return InvalidParameter(message, provider_id=provider_id, code=code)


async def with_retries(
    operation: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, float, TransferError], None] | None = None,
) -> T:
    """Run ``operation(attempt)``; retry retryable errors with backoff, honouring ``retry_after``."""
    attempt = 1
    while True:
        try:
            return await operation(attempt)
        except TransferError as exc:
            if not exc.retryable:
                raise
            if attempt >= policy.max_attempts:
                exc.args = (f"{exc} (gave up after {attempt} attempts)",)
                raise
            asked = exc.retry_after if isinstance(exc, ProviderError) else None
            if asked is not None and asked > policy.max_retry_after_s:
                exc.args = (f"{exc} (the provider asks to wait {asked:.0f} s: try again later)",)
                exc.retryable = False
                raise
            delay = asked if asked is not None else policy.backoff(attempt)
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            await sleep(delay)
            attempt += 1
