"""A mailbox's folders as the API shows them (``/v1/mailboxes/{id}/folders``); the calls
themselves are :class:`mailport.mailboxes.access.MailAccess`'s."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mailport.connectors.folders import Role


class FolderOut(BaseModel):
    """One folder of a mailbox, as the API shows it."""

    path: str = Field(description="The server's full name; what folder parameters take.")
    delimiter: str | None = Field(description="The hierarchy separator (None: a flat name space).")
    name: str = Field(description="The last level of the path, decoded for display.")
    role: Role | None = Field(description="What the folder is for, from SPECIAL-USE or a well-known name.")
    messages: int | None = Field(description="Messages in the folder (None: not known).")
    unseen: int | None = Field(description="Messages without the seen flag (None: not known).")
    subscribed: bool
    selectable: bool = Field(description="False for a folder that only holds other folders.")

    model_config = ConfigDict(from_attributes=True)  # built from a connector Folder


class FolderList(BaseModel):
    data: list[FolderOut]
