"""SMTP submission for mailport (aiosmtplib underneath); see :mod:`mailport.smtp.client`."""

from mailport.smtp.client import SendResult, SmtpClient, send_message

__all__ = ["SendResult", "SmtpClient", "send_message"]
