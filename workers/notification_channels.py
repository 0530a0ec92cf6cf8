"""Notification channels: email over SMTP, and an outbound webhook with httpx.

A failed send raises `SendError`, whose message is stored on the delivery and logged: it names
the SMTP code or the HTTP status and what to check, never a recipient's address nor the
webhook's URL (a credential).
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Protocol
from urllib.parse import unquote, urlsplit

import httpx

from models.notifications import NOT_ONE_PLAIN_ADDRESS, WEBHOOK_RECIPIENT, plain_address
from models.redaction import scrub_text


class Sender(Protocol):
    """A channel. It may say how many sends it runs at once (`parallel`, threads; 1 when it
    says nothing) and how many deliveries it holds claimed at once (`window`, 1 likewise):
    those being sent and those waiting for a free connection or their slot. A kill of the
    process leaves at most `window` of them `sending`."""

    def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        """Deliver one message; raise on failure. `key` identifies it across retries."""

    def close(self) -> None:
        """End a batch of sends: let go of a connection kept open between them."""


class SendError(Exception):
    """A send failed; the message says why without naming the recipient."""


class Undeliverable(SendError):
    """Retrying cannot help: the delivery fails for good at once."""


def message_id(key: str, domain: str = "voucherhook") -> str:
    """The Message-ID of the email whose idempotency key is `key`: the same on every attempt,
    in every process, so that mail systems drop a rare double send."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def _domain(sender: str) -> str:
    """The domain of the sender's address, for Message-IDs; `voucherhook` when it has none
    that is a plain host name."""
    domain = parseaddr(sender)[1].rpartition("@")[2]
    return domain if re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", domain) else "voucherhook"


WITHHELD = "(address withheld)"


def _redact(text: str | bytes, *known: str) -> str:
    """An SMTP server's message without the addresses in it (servers quote the one refused,
    often in angle brackets) nor the `known` ones."""
    shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    scrubbed = scrub_text(shown, known, marker=WITHHELD) or ""
    return scrubbed.replace(f"<{WITHHELD}>", WITHHELD).strip()


class EmailSender:
    """One email at a time over one SMTP connection, claimed one at a time (`parallel` and
    `window` 1): at the channel's rate limit, a slow first connection (TLS, login) could
    otherwise let the next emails, whose slots were given with its own, arrive at the relay
    less than an interval after it."""

    def __init__(self, smtp_url: str, sender: str, timeout: float = 15.0) -> None:
        parts = urlsplit(smtp_url)
        self._host = parts.hostname or "localhost"
        self._tls = parts.scheme == "smtps"
        self._port = parts.port or (465 if self._tls else 587)
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._sender = sender
        self._domain = _domain(sender)
        self._timeout = timeout
        # Kept open from one send to the next of a batch; dropped on any error, so a message
        # is never handed to a connection whose state is unknown.
        self._smtp: smtplib.SMTP | None = None

    def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        address = plain_address(recipient)
        if address is None:
            raise Undeliverable(
                f"not sent: the recipient {NOT_ONE_PLAIN_ADDRESS}; correct the customer's email "
                "in Voucherify"
            )
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = address
        message["Subject"] = subject
        # The same Message-ID on every attempt lets mail systems drop a rare double send.
        message["Message-ID"] = message_id(key, self._domain)
        message.set_content(body)
        try:
            try:
                self._deliver(message)
            except BaseException:
                self.close()
                raise
        except smtplib.SMTPRecipientsRefused as exc:
            answers = "; ".join(
                f"{code} {_redact(text, address)}" for code, text in exc.recipients.values()
            )
            raise SendError(
                f"the SMTP server refused the recipient ({answers}): check the customer's email "
                "in Voucherify"
            ) from None
        except smtplib.SMTPSenderRefused as exc:
            raise SendError(
                f"the SMTP server refused the sender ({exc.smtp_code} "
                f"{_redact(exc.smtp_error, address, self._sender)}): check VOUCHERHOOK_EMAIL_FROM"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise SendError(
                f"the SMTP server answered {exc.smtp_code} "
                f"{_redact(exc.smtp_error, address, self._sender)}: check SMTP_URL and the server"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(
                f"the SMTP server could not be reached ({type(exc).__name__}: "
                f"{_redact(str(exc), address, self._sender)}): check SMTP_URL and the server"
            ) from None

    def _deliver(self, message: EmailMessage) -> None:
        if self._smtp is None:
            self._smtp = self._connect()
        self._smtp.send_message(message)

    def _connect(self) -> smtplib.SMTP:
        smtp: smtplib.SMTP
        if self._tls:
            smtp = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        try:
            if not self._tls and smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
            if self._user:
                smtp.login(self._user, self._password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


class WebhookSender:
    """Posts to the URL it is given (NOTIFY_WEBHOOK_URL, read from the settings), whatever the
    URL was when the delivery was planned: a rotated URL serves pending deliveries too."""

    parallel = 8
    """Posts in flight at once (the client is thread-safe and keeps a connection alive for
    each): a round trip's wait is spent on the next ones. More threads cost more CPU per post
    than they save waiting (each takes Python's lock in turn)."""
    window = 32
    """Posts claimed at once: a transaction costs more than a post to a fast endpoint, so the
    claim's, and that recording the outcomes, are shared by half of them."""

    def __init__(self, url: str, client: httpx.Client | None = None) -> None:
        self._url = url
        self._client = client or httpx.Client(timeout=10.0)

    def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        if recipient != WEBHOOK_RECIPIENT:
            raise Undeliverable(
                f"not sent: a webhook delivery's recipient must be {WEBHOOK_RECIPIENT}; run "
                "`voucherhook migrate`, which rewrites deliveries planned before"
            )
        try:
            response = self._client.post(
                self._url, json={"text": body}, headers={"Idempotency-Key": key}
            )
        except httpx.HTTPError as exc:
            raise SendError(
                f"the operations webhook could not be reached ({type(exc).__name__}: "
                f"{self._redact(str(exc))}): check {WEBHOOK_RECIPIENT} and the network"
            ) from None
        if not response.is_success:
            raise SendError(
                f"the operations webhook answered {response.status_code} "
                f"{response.reason_phrase}: check {WEBHOOK_RECIPIENT}"
            )

    def close(self) -> None:
        """Nothing to end: the client keeps its connections alive between batches."""

    def _redact(self, text: str) -> str:
        for shown in (self._url, str(httpx.URL(self._url)), urlsplit(self._url).path):
            if shown and shown != "/":
                text = text.replace(shown, WEBHOOK_RECIPIENT)
        return text
