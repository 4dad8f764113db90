"""``AsyncClient`` and ``Client``: the typed HTTP client of a running ``mailport serve``.

Both carry every ``/v1`` operation by group (``client.mailboxes.list()``,
``client.messages.search(...)``, ``client.webhooks.replay(...)``: see ``resources.py``), with
the same base URL, credential, timeouts, retries and user agent for every request.
"""

from __future__ import annotations

from types import TracebackType

import httpx

from mailport.client.resources import AsyncResources, Resources
from mailport.client.secrets import Secret, as_secret
from mailport.client.transport import USER_AGENT, AsyncTransport, Options, SyncTransport
from mailport.retry import RetryPolicy


def _options(
    base_url: str,
    credential: str | Secret | None,
    timeout: float | httpx.Timeout,
    retries: RetryPolicy | None,
    max_retry_after: float,
    user_agent: str | None,
) -> Options:
    defaults = Options(base_url)
    return Options(
        base_url=base_url,
        credential=as_secret(credential) if credential is not None else None,
        timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
        retries=retries or defaults.retries,
        max_retry_after=max_retry_after,
        user_agent=f"{user_agent} {USER_AGENT}" if user_agent else USER_AGENT,
    )


class AsyncClient(AsyncResources):
    """``async with AsyncClient("http://127.0.0.1:8025", key) as mp: await mp.mailboxes.list()``.

    ``credential``: a tenant's API key, the admin key, or a host application's user JWT.
    ``timeout``: seconds (or an ``httpx.Timeout``). ``retries``: the backoff of retried 429/503
    answers when the server sends no ``Retry-After`` (its ``max_attempts`` bounds every retry);
    a ``Retry-After`` above ``max_retry_after`` seconds is raised at once. ``user_agent`` is put
    before the client's own. ``http``: an ``httpx.AsyncClient`` to send with instead of
    mailport's own (whose connections go through ``mailport.net``), left open on closing.
    """

    def __init__(
        self,
        base_url: str,
        credential: str | Secret | None = None,
        *,
        timeout: float | httpx.Timeout = 30.0,
        retries: RetryPolicy | None = None,
        max_retry_after: float = 30.0,
        user_agent: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        options = _options(base_url, credential, timeout, retries, max_retry_after, user_agent)
        self._transport = AsyncTransport(options, http)
        super().__init__(self._transport)

    def __repr__(self) -> str:
        return f"AsyncClient({self._transport.options!r})"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()


class Client(Resources):
    """The same operations for synchronous code: ``with Client(url, key) as mp: mp.mailboxes.list()``.

    The parameters are :class:`AsyncClient`'s. It sends through an async client on a private
    event loop in a thread of its own (closed by :meth:`close`), so ``http`` is an
    ``httpx.AsyncClient`` here too.
    """

    def __init__(
        self,
        base_url: str,
        credential: str | Secret | None = None,
        *,
        timeout: float | httpx.Timeout = 30.0,
        retries: RetryPolicy | None = None,
        max_retry_after: float = 30.0,
        user_agent: str | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        options = _options(base_url, credential, timeout, retries, max_retry_after, user_agent)
        self._transport = SyncTransport(options, http)
        super().__init__(self._transport)

    def __repr__(self) -> str:
        return f"Client({self._transport.options!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()
