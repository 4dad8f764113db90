"""A small typed asyncio client for the Gmail API endpoints mailport uses.

Why not ``google-api-python-client``: it is synchronous (every call would block the event loop
or need a thread per request), builds its methods at run time from the discovery document (no
types for mypy), brings google-auth and httplib2 with it, and has no place for mailport's host
guard, token manager or per-mailbox concurrency bound. The two dozen endpoints below are plain
JSON over :class:`~mailport.connectors.api_http.ApiHttp`, which already does retries, throttling
and the one forced token refresh. The shapes are checked against Google's discovery document
(``gmail.v1.json``) by ``tests/integration/gmail/test_spec.py``.

Three transports of the API appear here:

* JSON requests to ``/gmail/v1/users/{userId}/…``;
* batches (``POST /batch/gmail/v1``, ``multipart/mixed``, at most :data:`BATCH_LIMIT` requests
  each, as Google recommends) for reading many messages: one HTTP request per 50 messages;
  items answered 429/403-rate-limited/5xx are retried in a later batch, 404 items come back None;
* media uploads (``/upload/gmail/v1/…``) for messages above :data:`UPLOAD_THRESHOLD`: the JSON
  ``raw`` field carries base64 (a third more bytes) and Google refuses large JSON bodies.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Sequence
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import httpx

from mailport.connectors.api_http import RATE_LIMIT_REASONS, ApiHttp
from mailport.connectors.gmail.models import (
    Draft,
    DraftList,
    GmailMessage,
    GmailThread,
    HistoryExpiredError,
    HistoryPage,
    Label,
    MessageList,
    Profile,
    Watch,
    b64url_encode,
)
from mailport.errors import (
    ApiRateLimitedError,
    FolderNotFoundError,
    MessageNotFoundError,
    NotFoundError,
    OAuthTokenRejectedError,
    ProtocolError,
    ProviderError,
    ThreadNotFoundError,
)

BATCH_LIMIT = 50  # Google: "we recommend not more than 50" per batch (the hard limit is 100)
UPLOAD_THRESHOLD = 4 * 1024 * 1024  # above this, a message goes through the upload endpoint
MessageFormat = Literal["raw", "metadata", "minimal", "full"]
HistoryType = Literal["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"]
InternalDateSource = Literal["receivedTime", "dateHeader"]


class GmailClient:
    """The Gmail API of one user (``me``: the token's own account)."""

    def __init__(self, http: ApiHttp, user: str = "me") -> None:
        self.http = http
        self.user = user
        self._prefix = f"/gmail/v1/users/{quote(user, safe='@')}"

    def __repr__(self) -> str:
        return f"GmailClient(user={self.user!r})"

    # ------------------------------------------------------------------ account

    async def profile(self) -> Profile:
        return Profile.from_json(await self.http.json("GET", f"{self._prefix}/profile"))

    async def watch(
        self,
        topic: str,
        *,
        label_ids: Sequence[str] = (),
        label_filter_behavior: Literal["include", "exclude"] = "include",
    ) -> Watch:
        """Start (or replace) the mailbox's push watch on a Pub/Sub topic; expires in 7 days."""
        body: dict[str, Any] = {"topicName": topic}
        if label_ids:
            body["labelIds"] = list(label_ids)
            body["labelFilterBehavior"] = label_filter_behavior
        return Watch.from_json(
            await self.http.json("POST", f"{self._prefix}/watch", json=body, idempotent=True)
        )

    async def stop(self) -> None:
        await self.http.request("POST", f"{self._prefix}/stop", expect=(200, 204), idempotent=True)

    # ------------------------------------------------------------------ labels

    async def labels(self) -> list[Label]:
        data = await self.http.json("GET", f"{self._prefix}/labels")
        return [Label.from_json(item) for item in data.get("labels") or ()]

    async def label(self, id: str) -> Label:
        return Label.from_json(
            await self.http.json("GET", f"{self._prefix}/labels/{quote(id)}", not_found=FolderNotFoundError)
        )

    async def create_label(self, name: str) -> Label:
        body = {"name": name, "labelListVisibility": "labelShow", "messageListVisibility": "show"}
        return Label.from_json(await self.http.json("POST", f"{self._prefix}/labels", json=body))

    async def patch_label(self, id: str, name: str) -> Label:
        return Label.from_json(
            await self.http.json(
                "PATCH",
                f"{self._prefix}/labels/{quote(id)}",
                json={"name": name},
                not_found=FolderNotFoundError,
            )
        )

    async def delete_label(self, id: str) -> None:
        await self.http.request(
            "DELETE", f"{self._prefix}/labels/{quote(id)}", expect=(200, 204), not_found=FolderNotFoundError
        )

    # ------------------------------------------------------------------ messages: reading

    async def list_messages(
        self,
        *,
        label_ids: Sequence[str] = (),
        q: str | None = None,
        page_token: str | None = None,
        max_results: int = 100,
        include_spam_trash: bool = False,
    ) -> MessageList:
        params: dict[str, Any] = {
            "labelIds": list(label_ids),
            "q": q,
            "pageToken": page_token,
            "maxResults": max_results,
            "includeSpamTrash": include_spam_trash or None,
        }
        return MessageList.from_json(await self.http.json("GET", f"{self._prefix}/messages", params=params))

    async def get_message(
        self, id: str, *, format: MessageFormat = "raw", metadata_headers: Sequence[str] = ()
    ) -> GmailMessage:
        params = self._get_params(format, metadata_headers)
        data = await self.http.json(
            "GET", f"{self._prefix}/messages/{quote(id)}", params=params, not_found=MessageNotFoundError
        )
        return GmailMessage.from_json(data)

    async def get_messages(
        self, ids: Sequence[str], *, format: MessageFormat = "raw", metadata_headers: Sequence[str] = ()
    ) -> list[GmailMessage | None]:
        """``messages.get`` for many ids in batches of :data:`BATCH_LIMIT`; None where Gmail
        answers 404 (the message is gone). Order follows ``ids``. A single id is a plain GET:
        the push path usually fetches one message, and a one-part batch costs a multipart
        envelope each way for nothing."""
        if len(ids) == 1:
            try:
                return [await self.get_message(ids[0], format=format, metadata_headers=metadata_headers)]
            except MessageNotFoundError:
                return [None]
        query = urlencode(self._get_params(format, metadata_headers), doseq=True)
        results: list[GmailMessage | None] = []
        for start in range(0, len(ids), BATCH_LIMIT):
            chunk = ids[start : start + BATCH_LIMIT]
            paths = [f"{self._prefix}/messages/{quote(id)}?{query}" for id in chunk]
            for item in await self.batch_get(paths):
                results.append(GmailMessage.from_json(item) if item is not None else None)
        return results

    async def thread(self, id: str, *, format: MessageFormat = "minimal") -> GmailThread:
        params = self._get_params(format, ())
        data = await self.http.json(
            "GET", f"{self._prefix}/threads/{quote(id)}", params=params, not_found=ThreadNotFoundError
        )
        return GmailThread.from_json(data)

    async def history(
        self,
        start_history_id: str,
        *,
        label_id: str | None = None,
        history_types: Sequence[HistoryType] = (),
        page_token: str | None = None,
        max_results: int = 500,
    ) -> HistoryPage:
        """One page of changes after ``start_history_id``; :class:`HistoryExpiredError` when
        Gmail no longer has history that old (404)."""
        params: dict[str, Any] = {
            "startHistoryId": start_history_id,
            "labelId": label_id,
            "historyTypes": list(history_types),
            "pageToken": page_token,
            "maxResults": max_results,
        }
        response = await self.http.request("GET", f"{self._prefix}/history", params=params, expect=(200, 404))
        if response.status_code == 404:
            raise HistoryExpiredError(
                f"gmail_api: history after {start_history_id} is no longer available ({_said(response)})"
            )
        return HistoryPage.from_json(response.json())

    # ------------------------------------------------------------------ messages: changing

    async def modify(self, id: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> GmailMessage:
        body = {"addLabelIds": list(add), "removeLabelIds": list(remove)}
        data = await self.http.json(
            "POST",
            f"{self._prefix}/messages/{quote(id)}/modify",
            json=body,
            idempotent=True,
            not_found=MessageNotFoundError,
        )
        return GmailMessage.from_json(data)

    async def batch_modify(
        self, ids: Sequence[str], add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> None:
        """Labels on up to 1,000 messages per request (more are split)."""
        add, remove = list(add), list(remove)
        for start in range(0, len(ids), 1000):
            body = {"ids": list(ids[start : start + 1000]), "addLabelIds": add, "removeLabelIds": remove}
            await self.http.request(
                "POST", f"{self._prefix}/messages/batchModify", json=body, expect=(200, 204), idempotent=True
            )

    async def trash(self, id: str) -> GmailMessage:
        return await self._message_action(id, "trash")

    async def untrash(self, id: str) -> GmailMessage:
        return await self._message_action(id, "untrash")

    async def _message_action(self, id: str, action: Literal["trash", "untrash"]) -> GmailMessage:
        path = f"{self._prefix}/messages/{quote(id)}/{action}"
        data = await self.http.json("POST", path, idempotent=True, not_found=MessageNotFoundError)
        return GmailMessage.from_json(data)

    async def delete(self, id: str) -> None:
        """Delete for good (not to Trash)."""
        await self.http.request(
            "DELETE",
            f"{self._prefix}/messages/{quote(id)}",
            expect=(200, 204),
            not_found=MessageNotFoundError,
        )

    async def batch_delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), 1000):
            body = {"ids": list(ids[start : start + 1000])}
            await self.http.request(
                "POST", f"{self._prefix}/messages/batchDelete", json=body, expect=(200, 204), idempotent=True
            )

    async def insert(
        self, raw: bytes, label_ids: Sequence[str], *, internal_date_source: InternalDateSource = "dateHeader"
    ) -> GmailMessage:
        """Put a message into the mailbox as is (like IMAP APPEND: no scanning, no sending)."""
        return await self._message_upload(
            "messages", raw, {"labelIds": list(label_ids)}, {"internalDateSource": internal_date_source}
        )

    async def import_(self, raw: bytes, label_ids: Sequence[str]) -> GmailMessage:
        """Import a message as if received (spam-checked and threaded by Gmail)."""
        return await self._message_upload(
            "messages/import", raw, {"labelIds": list(label_ids)}, {"internalDateSource": "dateHeader"}
        )

    async def send(self, raw: bytes, *, thread_id: str | None = None) -> GmailMessage:
        """Send ``raw`` (Gmail files the Sent copy); ``thread_id`` keeps a reply in its thread."""
        metadata = {"threadId": thread_id} if thread_id else {}
        return await self._message_upload("messages/send", raw, metadata, {})

    # ------------------------------------------------------------------ drafts

    async def drafts_list(
        self, *, page_token: str | None = None, max_results: int = 100, q: str | None = None
    ) -> DraftList:
        params = {"pageToken": page_token, "maxResults": max_results, "q": q}
        return DraftList.from_json(await self.http.json("GET", f"{self._prefix}/drafts", params=params))

    async def draft_get(self, id: str, *, format: MessageFormat = "raw") -> Draft:
        data = await self.http.json(
            "GET",
            f"{self._prefix}/drafts/{quote(id)}",
            params={"format": format},
            not_found=MessageNotFoundError,
        )
        return Draft.from_json(data)

    async def draft_create(self, raw: bytes, thread_id: str | None = None) -> Draft:
        return Draft.from_json(await self._draft_upload("POST", "drafts", raw, thread_id, None))

    async def draft_update(self, id: str, raw: bytes, thread_id: str | None = None) -> Draft:
        return Draft.from_json(await self._draft_upload("PUT", f"drafts/{quote(id)}", raw, thread_id, id))

    async def draft_delete(self, id: str) -> None:
        await self.http.request(
            "DELETE", f"{self._prefix}/drafts/{quote(id)}", expect=(200, 204), not_found=MessageNotFoundError
        )

    async def draft_send(self, id: str) -> GmailMessage:
        data = await self.http.json(
            "POST", f"{self._prefix}/drafts/send", json={"id": id}, not_found=MessageNotFoundError
        )
        return GmailMessage.from_json(data)

    # ------------------------------------------------------------------ batches

    async def batch_get(self, paths: Sequence[str]) -> list[Any | None]:
        """GET each path (under the API's host, with its query) in one ``multipart/mixed`` batch
        request (at most :data:`BATCH_LIMIT`); the decoded JSON per item, None for a 404.
        Throttled or failed items are retried in a smaller batch after a wait, bounded as the
        HTTP client bounds its own retries."""
        if len(paths) > BATCH_LIMIT:
            raise ValueError(f"a Gmail batch holds at most {BATCH_LIMIT} requests")
        results: dict[int, Any | None] = {}
        pending = list(range(len(paths)))
        failures = 0
        refreshed = False
        root = urlsplit(self.http.base_url).path.rstrip("/")
        while pending:
            answers = await self._batch_round([f"{root}{paths[i]}" for i in pending])
            retry: list[int] = []
            asked: float | None = None
            rejected = False
            for index, (status, headers, body) in zip(pending, answers, strict=True):
                if 200 <= status < 300:
                    results[index] = _json_or_none(body)
                elif status == 404:
                    results[index] = None
                elif status == 401:
                    rejected = True
                    retry.append(index)
                elif status in (429, 500, 502, 503, 504) or (
                    status == 403 and _reasons(body) & RATE_LIMIT_REASONS
                ):
                    retry.append(index)
                    wait = headers.get("retry-after")
                    if wait and wait.isdigit():
                        asked = max(asked or 0.0, float(wait))
                else:
                    raise _item_error(paths[index], status, body)
            if not retry:
                break
            if rejected:
                if refreshed or not await self.http.refresh():
                    raise OAuthTokenRejectedError(
                        "gmail_api: the provider refused the access token in a batch"
                    )
                refreshed = True
            else:
                failures += 1
                if failures > self.http.max_retries:
                    raise ApiRateLimitedError(
                        f"gmail_api: {len(retry)} batch items still throttled after {failures} rounds",
                        retry_after=asked,
                    )
                await self.http.pause(asked if asked is not None else self.http.retry_delay(failures))
            pending = retry
        return [results[i] for i in range(len(paths))]

    async def _batch_round(self, paths: Sequence[str]) -> list[tuple[int, dict[str, str], bytes]]:
        boundary = "batch_" + secrets.token_hex(12)
        parts = [
            f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <item-{n}>\r\n\r\n"
            f"GET {path}\r\n\r\n"
            for n, path in enumerate(paths)
        ]
        body = ("".join(parts) + f"--{boundary}--\r\n").encode()
        response = await self.http.request(
            "POST",
            "/batch/gmail/v1",
            content=body,
            headers={"content-type": f"multipart/mixed; boundary={boundary}"},
            idempotent=True,
        )
        answers = parse_batch_response(response)
        by_id = {content_id: answer for content_id, answer in answers}
        try:
            return [by_id[f"response-item-{n}"] for n in range(len(paths))]
        except KeyError as exc:
            raise ProtocolError(f"gmail_api: the batch answer lacks {exc.args[0]}") from exc

    # ------------------------------------------------------------------ uploads

    async def _message_upload(
        self, what: str, raw: bytes, metadata: dict[str, Any], params: dict[str, Any]
    ) -> GmailMessage:
        """POST a message as JSON ``raw`` below :data:`UPLOAD_THRESHOLD`, else through the upload
        endpoint (``media`` when there is no metadata, ``multipart`` with it)."""
        if len(raw) <= UPLOAD_THRESHOLD:
            data = await self.http.json(
                "POST", f"{self._prefix}/{what}", params=params, json={**metadata, "raw": b64url_encode(raw)}
            )
            return GmailMessage.from_json(data)
        return GmailMessage.from_json(await self._upload("POST", what, raw, metadata or None, params))

    async def _draft_upload(
        self, method: str, what: str, raw: bytes, thread_id: str | None, draft_id: str | None
    ) -> Any:
        message: dict[str, Any] = {"threadId": thread_id} if thread_id else {}
        body: dict[str, Any] = {"id": draft_id} if draft_id else {}
        if len(raw) <= UPLOAD_THRESHOLD:
            body["message"] = {**message, "raw": b64url_encode(raw)}
            return await self.http.json(
                method, f"{self._prefix}/{what}", json=body, not_found=MessageNotFoundError
            )
        if message:
            body["message"] = message
        return await self._upload(method, what, raw, body or None, {})

    async def _upload(
        self, method: str, what: str, raw: bytes, metadata: dict[str, Any] | None, params: dict[str, Any]
    ) -> Any:
        path = f"/upload{self._prefix}/{what}"
        if metadata is None:
            response = await self.http.request(
                method,
                path,
                params={**params, "uploadType": "media"},
                content=raw,
                headers={"content-type": "message/rfc822"},
                not_found=MessageNotFoundError,
            )
        else:
            boundary = "upload_" + secrets.token_hex(12)
            body = (
                (
                    f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                    f"{json.dumps(metadata)}\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
                ).encode()
                + raw
                + f"\r\n--{boundary}--\r\n".encode()
            )
            response = await self.http.request(
                method,
                path,
                params={**params, "uploadType": "multipart"},
                content=body,
                headers={"content-type": f"multipart/related; boundary={boundary}"},
                not_found=MessageNotFoundError,
            )
        return response.json()

    @staticmethod
    def _get_params(format: MessageFormat, metadata_headers: Sequence[str]) -> dict[str, Any]:
        params: dict[str, Any] = {"format": format}
        if format == "metadata" and metadata_headers:
            params["metadataHeaders"] = list(metadata_headers)
        return params


# ---------------------------------------------------------------------- batch answers (pure)


def parse_batch_response(response: httpx.Response) -> list[tuple[str, tuple[int, dict[str, str], bytes]]]:
    """The parts of a ``multipart/mixed`` batch answer: (Content-ID without ``<>``, (status,
    lower-cased headers, body)) per part, in the order received."""
    content_type = response.headers.get("content-type", "")
    boundary = _boundary(content_type)
    if boundary is None:
        raise ProtocolError(f"gmail_api: a batch answer of type {content_type[:80]!r}")
    return parse_multipart_http(response.content, boundary)


def parse_multipart_http(body: bytes, boundary: str) -> list[tuple[str, tuple[int, dict[str, str], bytes]]]:
    """Split a ``multipart/mixed`` body of ``application/http`` parts into embedded answers."""
    delimiter = b"--" + boundary.encode()
    parts: list[tuple[str, tuple[int, dict[str, str], bytes]]] = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        part_headers, _, embedded = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        content_id = _headers(part_headers).get("content-id", "").strip("<>")
        status_block, _, inner_body = embedded.partition(b"\r\n\r\n")
        status_line, _, inner_headers = status_block.partition(b"\r\n")
        fields = status_line.split()
        if len(fields) < 2 or not fields[1].isdigit():
            raise ProtocolError("gmail_api: a batch part without an HTTP status line")
        if inner_body.endswith(b"\r\n"):
            inner_body = inner_body[:-2]
        parts.append((content_id, (int(fields[1]), _headers(inner_headers), inner_body)))
    return parts


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _boundary(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    return None


def _json_or_none(body: bytes) -> Any | None:
    body = body.strip()
    return json.loads(body) if body else {}


def _reasons(body: bytes) -> set[str]:
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return set()
    return {str(item.get("reason")) for item in error.get("errors") or () if isinstance(item, dict)}


def _said(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


def _item_error(path: str, status: int, body: bytes) -> ProviderError | NotFoundError:
    where = f"gmail_api: batch GET {path.split('?', 1)[0]}"
    try:
        said = str(json.loads(body)["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        said = body[:300].decode("utf-8", "replace")
    return ProviderError(f"{where}: HTTP {status}", server_said=said, provider_status=status)


__all__ = [
    "BATCH_LIMIT",
    "UPLOAD_THRESHOLD",
    "GmailClient",
    "HistoryType",
    "MessageFormat",
    "parse_batch_response",
    "parse_multipart_http",
]
