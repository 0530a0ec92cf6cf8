"""Notification channels: email over SMTP, and an outbound webhook with httpx."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol
from urllib.parse import unquote, urlsplit

import httpx


class Sender(Protocol):
    def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        """Deliver one message; raise on failure. `key` identifies it across retries."""


class EmailSender:
    def __init__(self, smtp_url: str, sender: str, timeout: float = 15.0) -> None:
        parts = urlsplit(smtp_url)
        self._host = parts.hostname or "localhost"
        self._tls = parts.scheme == "smtps"
        self._port = parts.port or (465 if self._tls else 587)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._timeout = timeout

    def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = recipient
        message["Subject"] = subject
        # The same Message-ID on every attempt lets mail systems drop a rare double send.
        message["Message-ID"] = make_msgid(idstring=key.replace(":", "."), domain="voucherhook")
        message.set_content(body)
        smtp: smtplib.SMTP
        if self._tls:
            smtp = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        with smtp:
            if not self._tls and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if self._user:
                smtp.login(self._user, self._password or "")
            smtp.send_message(message)


class WebhookSender:
    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=10.0)

    def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        response = self._client.post(
            recipient, json={"text": body}, headers={"Idempotency-Key": key}
        )
        response.raise_for_status()
