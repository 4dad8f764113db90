"""Auto-detection of mail settings from an email address.

``await Detector(...).detect("support@company.com")`` -> :class:`DetectionResult`, the
structure the API (``POST /v1/detect``) and the CLI (``mailport detect``) answer with.
See ``docs/detection.md`` for the mechanisms and ``docs/providers.md`` for the data.
"""

from mailport.detect.address import parse_address
from mailport.detect.database import ProviderDatabase, default_database
from mailport.detect.detector import DetectOptions, Detector, configured_oauth_providers
from mailport.detect.dns import make_resolver
from mailport.detect.model import (
    Address,
    Alternative,
    DetectionResult,
    Hint,
    OAuthInfo,
    Provider,
    ServerSettings,
    ServerTemplate,
)

__all__ = [
    "Address",
    "Alternative",
    "DetectOptions",
    "DetectionResult",
    "Detector",
    "Hint",
    "OAuthInfo",
    "Provider",
    "ProviderDatabase",
    "ServerSettings",
    "ServerTemplate",
    "configured_oauth_providers",
    "default_database",
    "make_resolver",
    "parse_address",
]
