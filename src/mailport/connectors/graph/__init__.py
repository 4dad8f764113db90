"""The Microsoft Graph connector (``graph``)."""
