"""A small typed asyncio client for the Microsoft Graph v1.0 mail endpoints mailport uses.

Why hand-written rather than ``msgraph-sdk``: the SDK is about 380 MB installed and takes about a
second to import (it generates a module per endpoint of all of Graph), its HTTP stack is its
own (kiota over a bare httpx client, so it would bypass mailport's host guard and resolver) and
several of its paths (auth, retries) are synchronous. mailport needs some thirty endpoints:
folders, messages, ``/$value``, per-folder ``messages/delta``, sending with MIME, drafts and
subscriptions. Each is a few lines here over :class:`~mailport.connectors.api_http.ApiHttp`,
which carries the bearer token, the 401 refresh, Retry-After on 429/503 and the per-mailbox
concurrency limit (Graph's MailboxConcurrency is 4). Shapes follow Microsoft's description of
Graph; ``tests/integration/graph/test_spec.py`` checks every request this client sends against
the SDK's generated url templates and models (read from its wheel, never installed).

Every request carries ``Prefer: IdType="ImmutableId"`` so message ids survive moves (the item
of the core's idempotency key must not change when a message changes folder).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from mailport.connectors.api_http import ApiHttp
from mailport.connectors.graph.models import (
    WELL_KNOWN_ROLES,
    BatchRequest,
    BatchResponse,
    DeltaExpiredError,
    DeltaPage,
    GraphFolder,
    GraphMessage,
    GraphSubscription,
    MessageList,
    format_datetime,
)
from mailport.errors import (
    ApiRateLimitedError,
    FolderNotFoundError,
    MailportError,
    MessageNotFoundError,
    NotFoundError,
    ProviderError,
)

VERSION = "/v1.0"
IMMUTABLE_IDS = 'IdType="ImmutableId"'
BATCH_LIMIT = 20  # Graph refuses a JSON batch of more than 20 requests
INBOX = "INBOX"  # the inbox's path, as IMAP spells it (the contract's mapping)
# Fields the connector reads from a message; everything else stays on the server.
MESSAGE_FIELDS = (
    "id",
    "conversationId",
    "parentFolderId",
    "changeKey",
    "isRead",
    "isDraft",
    "flag",
    "categories",
    "subject",
    "internetMessageId",
    "receivedDateTime",
    "sentDateTime",
    "from",
    "hasAttachments",
)
_TOP_FOLDERS = 250  # Graph's page maximum for mailFolders


Sleep = Callable[[float], Awaitable[None]]


def _quote(value: str) -> str:
    return quote(value, safe="")


def _recipients(addresses: Sequence[str]) -> list[dict[str, Any]]:
    return [{"emailAddress": {"address": address}} for address in addresses]


class GraphClient:
    """Graph's mail endpoints for one mailbox (``user="me"``: the token's own mailbox)."""

    def __init__(
        self,
        http: ApiHttp,
        user: str = "me",
        *,
        sleep: Sleep = asyncio.sleep,
        batch_retries: int = 5,
        max_wait: float = 60.0,
    ) -> None:
        self.http = http
        self._root = VERSION + ("/me" if user == "me" else f"/users/{_quote(user)}")
        self._user_path = "/me" if user == "me" else f"/users/{_quote(user)}"
        self._sleep = sleep
        self._batch_retries = batch_retries
        self._max_wait = max_wait

    # -- plumbing ------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
        not_found: type[MailportError] = MessageNotFoundError,
        idempotent: bool | None = None,
        slots: int = 1,
    ) -> httpx.Response:
        return await self.http.request(
            method,
            path_or_url,
            params=params,
            json=json,
            content=content,
            headers={"Prefer": IMMUTABLE_IDS, **(headers or {})},
            expect=expect,
            not_found=not_found,
            idempotent=idempotent,
            slots=slots,
        )

    def _path(self, *parts: str) -> str:
        return self._root + "".join(f"/{part}" for part in parts)

    # -- the user ------------------------------------------------------------------------------

    async def me(self) -> tuple[str, str]:
        """The mailbox's address (``mail``, else the userPrincipalName) and its user id."""
        data = (await self._call("GET", self._root, params={"$select": "id,mail,userPrincipalName"})).json()
        return str(data.get("mail") or data.get("userPrincipalName") or ""), str(data["id"])

    # -- folders -------------------------------------------------------------------------------

    async def _folder_pages(self, url: str, params: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        next_url: str | None = url
        while next_url:
            data = (await self._call("GET", next_url, params=params, not_found=FolderNotFoundError)).json()
            found.extend(data.get("value", []))
            next_url, params = data.get("@odata.nextLink"), None
        return found

    async def _well_known_ids(self) -> dict[str, str]:
        """Folder id -> wellKnownName, in one ``$batch`` (v1.0 mailFolders do not say it)."""
        names = list(WELL_KNOWN_ROLES)
        answers = await self.batch(
            [
                BatchRequest(id=name, method="GET", url=f"{self._user_path}/mailFolders/{name}?$select=id")
                for name in names
            ]
        )
        return {a.body["id"]: a.id for a in answers if a.ok and isinstance(a.body, Mapping)}

    async def folders(self) -> list[GraphFolder]:
        """Every folder, recursively through ``childFolders``; paths as the contract maps them
        (the inbox is ``INBOX``, its children ``INBOX/Sub``)."""
        well_known = await self._well_known_ids()
        result: list[GraphFolder] = []
        level = [
            (data, "") for data in await self._folder_pages(self._path("mailFolders"), {"$top": _TOP_FOLDERS})
        ]
        while level:
            following: list[tuple[dict[str, Any], str]] = []
            for data, parent_path in level:
                name = well_known.get(data["id"])
                own = INBOX if name == "inbox" else str(data.get("displayName") or "")
                path = f"{parent_path}/{own}" if parent_path else own
                folder = GraphFolder.from_json(data, well_known=name, path=path)
                result.append(folder)
                if folder.child_count:
                    children = await self._folder_pages(
                        self._path("mailFolders", _quote(folder.id), "childFolders"), {"$top": _TOP_FOLDERS}
                    )
                    following.extend((child, path) for child in children)
            level = following
        return result

    async def folder(self, folder_id: str) -> GraphFolder:
        """One folder by id or wellKnownName (no ``path``: that needs its ancestors)."""
        data = (
            await self._call(
                "GET", self._path("mailFolders", _quote(folder_id)), not_found=FolderNotFoundError
            )
        ).json()
        name = folder_id if folder_id in WELL_KNOWN_ROLES else None
        return GraphFolder.from_json(data, well_known=name)

    async def well_known(self, name: str) -> GraphFolder:
        """The folder Graph knows as ``name`` (``inbox``, ``sentitems``, ``drafts`` …)."""
        return await self.folder(name)

    async def create_folder(self, name: str, *, parent_id: str | None = None) -> GraphFolder:
        path = (
            self._path("mailFolders", _quote(parent_id), "childFolders")
            if parent_id
            else self._path("mailFolders")
        )
        response = await self._call(
            "POST", path, json={"displayName": name}, expect=(201,), not_found=FolderNotFoundError
        )
        return GraphFolder.from_json(response.json())

    async def rename_folder(self, folder_id: str, name: str) -> GraphFolder:
        response = await self._call(
            "PATCH",
            self._path("mailFolders", _quote(folder_id)),
            json={"displayName": name},
            not_found=FolderNotFoundError,
        )
        return GraphFolder.from_json(response.json())

    async def delete_folder(self, folder_id: str) -> None:
        await self._call(
            "DELETE",
            self._path("mailFolders", _quote(folder_id)),
            expect=(204,),
            not_found=FolderNotFoundError,
        )

    # -- messages ------------------------------------------------------------------------------

    async def list_messages(
        self,
        folder_id: str | None,
        *,
        top: int = 50,
        next_link: str | None = None,
        filter: str | None = None,
        search: str | None = None,
        orderby: str | None = None,
        select: Sequence[str] = MESSAGE_FIELDS,
    ) -> MessageList:
        """One page of a folder's messages (``folder_id`` None: the whole mailbox). ``search``
        is Graph's KQL ``$search`` (quoted for it here); Graph allows no ``$orderby`` with it."""
        if next_link:
            response = await self._call("GET", next_link, not_found=FolderNotFoundError)
        else:
            params: dict[str, Any] = {"$top": top, "$select": ",".join(select)}
            if filter:
                params["$filter"] = filter
            if search:
                params["$search"] = '"' + search.replace('"', "") + '"'
            if orderby:
                params["$orderby"] = orderby
            path = (
                self._path("mailFolders", _quote(folder_id), "messages")
                if folder_id
                else self._path("messages")
            )
            response = await self._call("GET", path, params=params, not_found=FolderNotFoundError)
        data = response.json()
        return MessageList(
            items=[GraphMessage.from_json(item) for item in data.get("value", [])],
            next_link=data.get("@odata.nextLink"),
        )

    async def get_message(self, message_id: str, *, select: Sequence[str] = MESSAGE_FIELDS) -> GraphMessage:
        response = await self._call(
            "GET", self._path("messages", _quote(message_id)), params={"$select": ",".join(select)}
        )
        return GraphMessage.from_json(response.json())

    async def get_mime(self, message_id: str) -> bytes:
        """The message as RFC 5322 bytes (``/$value``), for mailport's own parser."""
        return (await self._call("GET", self._path("messages", _quote(message_id), "$value"))).content

    async def get_mimes(self, message_ids: Sequence[str]) -> list[bytes | None]:
        """Many messages' MIME, in order; None for one Graph no longer has (404: deleted since
        it was listed). Through ``$batch``, 20 ``/$value`` parts a call (Graph answers a part
        whose body is not JSON base64-encoded); parts Graph throttled are asked again after
        their Retry-After (:meth:`batch`). A single id is a plain GET: the push path fetches one
        message at a time, and a one-part batch costs an envelope each way for nothing."""
        if len(message_ids) == 1:
            try:
                return [await self.get_mime(message_ids[0])]
            except MessageNotFoundError:
                return [None]
        answers = await self.batch(
            [
                BatchRequest(id=str(n), method="GET", url=f"{self._user_path}/messages/{_quote(m)}/$value")
                for n, m in enumerate(message_ids)
            ]
        )
        return [_mime_of(answer, message_id) for answer, message_id in zip(answers, message_ids, strict=True)]

    async def delta(
        self,
        folder_id: str,
        *,
        delta_link: str | None = None,
        select: Sequence[str] = MESSAGE_FIELDS,
        filter: str | None = None,
        max_page_size: int | None = None,
    ) -> AsyncGenerator[DeltaPage, None]:
        """The pages of one delta round of a folder: from ``delta_link`` (the stored position)
        or, without it, every message (``filter``: only ``receivedDateTime ge …`` is allowed by
        Graph). The last page carries the new ``delta_link``. Raises :class:`DeltaExpiredError`
        on 410 (the caller starts a new round)."""
        headers = {"Prefer": f"{IMMUTABLE_IDS}, odata.maxpagesize={max_page_size}"} if max_page_size else {}
        url: str | None = delta_link
        params: dict[str, Any] | None = None
        if url is None:
            url = self._path("mailFolders", _quote(folder_id), "messages", "delta")
            params = {"$select": ",".join(select)}
            if filter:
                params["$filter"] = filter
        while url:
            response = await self._call(
                "GET", url, params=params, headers=headers, expect=(200, 410), not_found=FolderNotFoundError
            )
            if response.status_code == 410:
                raise DeltaExpiredError(_error_code(response) or "syncStateNotFound")
            data = response.json()
            items: list[GraphMessage] = []
            removed: list[str] = []
            for entry in data.get("value", []):
                if "@removed" in entry:
                    removed.append(str(entry["id"]))
                else:
                    items.append(GraphMessage.from_json(entry))
            next_link, new_delta = data.get("@odata.nextLink"), data.get("@odata.deltaLink")
            yield DeltaPage(items=items, removed_ids=removed, next_link=next_link, delta_link=new_delta)
            url, params = next_link, None

    async def update(
        self,
        message_id: str,
        *,
        is_read: bool | None = None,
        flag: str | None = None,
        categories: Sequence[str] | None = None,
    ) -> GraphMessage:
        """Change the flags Graph lets anyone change: ``isRead``, ``flag.flagStatus``
        (``flagged`` / ``notFlagged`` / ``complete``) and ``categories``."""
        body: dict[str, Any] = {}
        if is_read is not None:
            body["isRead"] = is_read
        if flag is not None:
            body["flag"] = {"flagStatus": flag}
        if categories is not None:
            body["categories"] = list(categories)
        response = await self._call("PATCH", self._path("messages", _quote(message_id)), json=body)
        return GraphMessage.from_json(response.json())

    async def move(self, message_id: str, dest_folder_id: str) -> str:
        """Move to a folder (id or wellKnownName); the message's id afterwards (immutable ids
        keep it)."""
        response = await self._call(
            "POST",
            self._path("messages", _quote(message_id), "move"),
            json={"destinationId": dest_folder_id},
            expect=(200, 201),
        )
        return str(response.json()["id"])

    async def copy(self, message_id: str, dest_folder_id: str) -> str:
        """Copy to a folder; the copy's id."""
        response = await self._call(
            "POST",
            self._path("messages", _quote(message_id), "copy"),
            json={"destinationId": dest_folder_id},
            expect=(200, 201),
        )
        return str(response.json()["id"])

    async def delete(self, message_id: str) -> None:
        """Delete as Outlook does: into Deleted Items (recoverable)."""
        await self._call("DELETE", self._path("messages", _quote(message_id)), expect=(204,))

    async def permanent_delete(self, message_id: str) -> None:
        """Delete for good (``permanentDelete``: not even in Recoverable Items)."""
        await self._call("POST", self._path("messages", _quote(message_id), "permanentDelete"), expect=(204,))

    async def create_mime(self, folder_id: str, raw: bytes) -> str:
        """Store an RFC 5322 message in a folder (POST the base64 MIME as ``text/plain``); its
        id. Graph stores it as a draft (``isDraft``) unless it is sent."""
        response = await self._call(
            "POST",
            self._path("mailFolders", _quote(folder_id), "messages"),
            content=base64.b64encode(raw),
            headers={"Content-Type": "text/plain"},
            expect=(201,),
            not_found=FolderNotFoundError,
        )
        return str(response.json()["id"])

    # -- sending and drafts -------------------------------------------------------------------

    async def send_mime(self, raw: bytes) -> None:
        """Send an RFC 5322 message as it is (``sendMail`` with base64 MIME); Graph files the
        copy in Sent Items itself."""
        await self._call(
            "POST",
            self._path("sendMail"),
            content=base64.b64encode(raw),
            headers={"Content-Type": "text/plain"},
            expect=(202,),
            not_found=NotFoundError,
        )

    async def _create_draft(self, message_id: str, action: str, body: Mapping[str, Any]) -> GraphMessage:
        response = await self._call(
            "POST", self._path("messages", _quote(message_id), action), json=dict(body), expect=(201,)
        )
        return GraphMessage.from_json(response.json())

    async def create_reply(self, message_id: str, *, comment: str | None = None) -> GraphMessage:
        """A reply draft in Drafts that Graph threads (In-Reply-To, References, conversation)."""
        return await self._create_draft(message_id, "createReply", {"comment": comment} if comment else {})

    async def create_reply_all(self, message_id: str, *, comment: str | None = None) -> GraphMessage:
        return await self._create_draft(message_id, "createReplyAll", {"comment": comment} if comment else {})

    async def create_forward(
        self, message_id: str, *, to: Sequence[str] = (), comment: str | None = None
    ) -> GraphMessage:
        body: dict[str, Any] = {}
        if to:
            body["toRecipients"] = _recipients(to)
        if comment:
            body["comment"] = comment
        return await self._create_draft(message_id, "createForward", body)

    async def update_draft(
        self,
        draft_id: str,
        *,
        subject: str | None = None,
        body: str | None = None,
        body_type: str = "text",
        to: Sequence[str] | None = None,
        cc: Sequence[str] | None = None,
        bcc: Sequence[str] | None = None,
        reply_to: Sequence[str] | None = None,
    ) -> GraphMessage:
        """Change a draft's subject, body (``body_type`` ``text`` or ``html``) and recipients."""
        patch: dict[str, Any] = {}
        if subject is not None:
            patch["subject"] = subject
        if body is not None:
            patch["body"] = {"contentType": body_type, "content": body}
        for key, value in (
            ("toRecipients", to),
            ("ccRecipients", cc),
            ("bccRecipients", bcc),
            ("replyTo", reply_to),
        ):
            if value is not None:
                patch[key] = _recipients(value)
        response = await self._call("PATCH", self._path("messages", _quote(draft_id)), json=patch)
        return GraphMessage.from_json(response.json())

    async def add_attachment(
        self,
        draft_id: str,
        *,
        name: str,
        content: bytes,
        content_type: str = "application/octet-stream",
        is_inline: bool = False,
        content_id: str | None = None,
    ) -> str:
        """Attach a file (up to 3 MB, Graph's limit for a fileAttachment in one request); its id."""
        body: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": name,
            "contentType": content_type,
            "contentBytes": base64.b64encode(content).decode(),
            "isInline": is_inline,
        }
        if content_id:
            body["contentId"] = content_id
        response = await self._call(
            "POST", self._path("messages", _quote(draft_id), "attachments"), json=body, expect=(201,)
        )
        return str(response.json()["id"])

    async def send_draft(self, draft_id: str) -> None:
        await self._call("POST", self._path("messages", _quote(draft_id), "send"), expect=(202,))

    # -- JSON batching --------------------------------------------------------------------------

    async def batch(self, requests: Sequence[BatchRequest]) -> list[BatchResponse]:
        """Run requests through ``$batch`` (at most 20 per call); answers in the order asked.
        Items Graph throttled (429, per item) are sent again after their Retry-After, a bounded
        number of times; then :class:`ApiRateLimitedError`."""
        answers: dict[str, BatchResponse] = {}
        for start in range(0, len(requests), BATCH_LIMIT):
            pending = list(requests[start : start + BATCH_LIMIT])
            for attempt in range(self._batch_retries + 1):
                got = await self._batch_once(pending)
                throttled = [request for request in pending if got[request.id].status == 429]
                answers.update(got)
                if not throttled:
                    break
                wait = min(self._max_wait, max(_retry_after(got[r.id].headers) for r in throttled))
                if attempt == self._batch_retries:
                    raise ApiRateLimitedError(
                        f"Graph still throttles {len(throttled)} batched requests", retry_after=wait
                    )
                await self._sleep(wait)
                pending = throttled
        return [answers[request.id] for request in requests]

    async def _batch_once(self, requests: Sequence[BatchRequest]) -> dict[str, BatchResponse]:
        payload = {
            "requests": [
                {
                    "id": request.id,
                    "method": request.method,
                    "url": request.url,
                    "headers": {
                        "Prefer": IMMUTABLE_IDS,
                        **({"Content-Type": "application/json"} if request.body is not None else {}),
                        **request.headers,
                    },
                    **({"body": request.body} if request.body is not None else {}),
                }
                for request in requests
            ]
        }
        response = await self._call(
            "POST",
            VERSION + "/$batch",
            json=payload,
            not_found=NotFoundError,
            idempotent=all(request.method == "GET" for request in requests),
            slots=len(requests),  # Graph runs up to four parts at once against the mailbox
        )
        data = response.json()
        got: dict[str, BatchResponse] = {}
        for item in data.get("responses", []):
            got[str(item["id"])] = BatchResponse(
                id=str(item["id"]),
                status=int(item["status"]),
                headers={str(k): str(v) for k, v in (item.get("headers") or {}).items()},
                body=item.get("body"),
            )
        missing = [request.id for request in requests if request.id not in got]
        if missing:
            raise ProviderError(f"Graph's $batch answered no response for {', '.join(missing)}")
        return got

    # -- subscriptions --------------------------------------------------------------------------

    async def create_subscription(
        self,
        resource: str,
        change_type: str,
        notification_url: str,
        lifecycle_url: str | None,
        client_state: str,
        expiration: datetime,
    ) -> GraphSubscription:
        """Subscribe to ``resource`` (``me/mailFolders('<id>')/messages``); Graph validates
        ``notification_url`` (and the lifecycle URL) before it answers."""
        body: dict[str, Any] = {
            "changeType": change_type,
            "notificationUrl": notification_url,
            "resource": resource,
            "expirationDateTime": format_datetime(expiration),
            "clientState": client_state,
        }
        if lifecycle_url:
            body["lifecycleNotificationUrl"] = lifecycle_url
        response = await self._call(
            "POST", VERSION + "/subscriptions", json=body, expect=(201,), not_found=NotFoundError
        )
        return GraphSubscription.from_json(response.json())

    async def renew_subscription(self, subscription_id: str, expiration: datetime) -> GraphSubscription:
        """Move the expiration (Graph refuses more than 4230 minutes from now for mail)."""
        response = await self._call(
            "PATCH",
            f"{VERSION}/subscriptions/{_quote(subscription_id)}",
            json={"expirationDateTime": format_datetime(expiration)},
        )
        return GraphSubscription.from_json(response.json())

    async def reauthorize_subscription(self, subscription_id: str) -> None:
        """Answer a ``reauthorizationRequired`` lifecycle event."""
        await self._call(
            "POST", f"{VERSION}/subscriptions/{_quote(subscription_id)}/reauthorize", expect=(200, 202, 204)
        )

    async def delete_subscription(self, subscription_id: str) -> None:
        """Delete a subscription; one that is already gone counts as deleted."""
        await self._call(
            "DELETE",
            f"{VERSION}/subscriptions/{_quote(subscription_id)}",
            expect=(204, 404),
            not_found=NotFoundError,
        )

    async def get_subscription(self, subscription_id: str) -> GraphSubscription | None:
        """The subscription, or None when Graph no longer has it."""
        response = await self._call(
            "GET",
            f"{VERSION}/subscriptions/{_quote(subscription_id)}",
            expect=(200, 404),
            not_found=NotFoundError,
        )
        return None if response.status_code == 404 else GraphSubscription.from_json(response.json())


def folder_resource(folder_id: str) -> str:
    """The subscription resource for a folder's messages, as Graph's documentation writes it."""
    return f"me/mailFolders('{folder_id}')/messages"


def _error_code(response: httpx.Response) -> str | None:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return str(error.get("code")) if isinstance(error, Mapping) and error.get("code") else None


def _mime_of(answer: BatchResponse, message_id: str) -> bytes | None:
    """A ``/$value`` part's MIME (base64 in the batch answer); None for a 404."""
    if answer.status == 404:
        return None
    if answer.ok and isinstance(answer.body, str):
        try:
            return base64.b64decode(answer.body, validate=True)
        except ValueError as exc:
            raise ProviderError(f"Graph's $batch answered {message_id}'s MIME not in base64") from exc
    error = answer.body.get("error") if isinstance(answer.body, Mapping) else None
    code = error.get("code") if isinstance(error, Mapping) else None
    raise ProviderError(
        f"Graph's $batch answered {answer.status} for {message_id}'s MIME",
        server_said=str(code or answer.status),
    )


def _retry_after(headers: Mapping[str, str]) -> float:
    for key, value in headers.items():
        if key.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                return 1.0
    return 1.0


__all__ = [
    "BATCH_LIMIT",
    "IMMUTABLE_IDS",
    "GraphClient",
    "folder_resource",
]
