"""Push notifications in: channels (where a provider pushes, and its secret) and the service that
authenticates a notification and records the wake-ups it asks for."""

from mailport.push.channels import ChannelRepository, NewChannel
from mailport.push.service import PushService

__all__ = ["ChannelRepository", "NewChannel", "PushService"]
