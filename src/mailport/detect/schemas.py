"""The API's request and response bodies for ``POST /v1/detect`` (OpenAPI documents them).

The response mirrors :meth:`mailport.detect.DetectionResult.to_dict` field by field.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from mailport.detect.model import DetectionResult
from mailport.servers import Security
from mailport.validation import RequestModel


class DetectRequest(RequestModel):
    # A plain string on purpose: a bad address is our `invalid_email`, not a schema error.
    email: str = Field(..., max_length=320, examples=["support@company.com"])


class ProviderOut(BaseModel):
    id: str
    name: str


class DetectedServer(BaseModel):
    host: str
    port: int
    security: Security
    username: str


class DetectedOAuth(BaseModel):
    provider: str = Field(description="google, microsoft, …")
    usable: bool = Field(description="The provider supports it AND this instance has an OAuth app for it")


class HintOut(BaseModel):
    code: str
    text: str
    url: str | None = None


Source = Literal["database", "autoconfig", "srv", "mx", "probe", "none"]
Confidence = Literal["high", "medium", "low"]


class AlternativeOut(BaseModel):
    provider: ProviderOut | None
    imap: DetectedServer | None
    pop3: DetectedServer | None
    smtp: DetectedServer | None
    source: Source
    confidence: Confidence


class DetectResponse(BaseModel):
    email: str
    domain: str
    provider: ProviderOut | None
    protocol: Literal["imap", "pop3"] | None = Field(
        description="The incoming protocol offered: imap whenever an IMAP server is found; pop3 "
        "only when none is (then `pop3` is set and the `pop3_only` hint says why); null: neither"
    )
    imap: DetectedServer | None
    pop3: DetectedServer | None = Field(description="Set only when no IMAP server was found")
    smtp: DetectedServer | None
    auth_methods: list[Literal["oauth2", "password", "app_password"]]
    oauth: DetectedOAuth | None
    hints: list[HintOut]
    source: Source
    confidence: Confidence
    alternatives: list[AlternativeOut]

    @classmethod
    def from_result(cls, result: DetectionResult) -> DetectResponse:
        return cls.model_validate(result.to_dict())
