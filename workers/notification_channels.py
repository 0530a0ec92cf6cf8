"""Notification channels: email over SMTP, and an outbound webhook over HTTP.

A failed send raises `SendError`, whose message is stored on the delivery and logged: it names
the SMTP code or the HTTP status and what to check, never a recipient's address nor the
webhook's URL (a credential).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import queue
import re
import select
import smtplib
import socket
import ssl
import urllib.request
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Protocol
from urllib.parse import SplitResult, unquote, urlsplit

import httpx
import orjson

from models.notifications import NOT_ONE_PLAIN_ADDRESS, WEBHOOK_RECIPIENT, plain_address
from models.redaction import scrub_text
from workers.parsing import version


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
    URL was when the delivery was planned: a rotated URL serves pending deliveries too.

    The post goes over the standard library's `http.client`, on connections kept alive from one
    post to the next of a task, each used by one thread at a time: it costs a quarter of httpx's
    CPU per post, which made the senders slower than the events they notify about
    (docs/performance.md). A connection the server closed while it was idle is
    dropped before it is used; one that fails during a post is dropped, and the delivery is
    retried later (its Idempotency-Key lets the receiver drop a double). When the environment
    names a proxy for the URL (HTTPS_PROXY, ALL_PROXY, not excluded by NO_PROXY), httpx posts
    instead, through that proxy."""

    parallel = 8
    """Posts in flight at once, each on a connection of its own: a round trip's wait is spent
    on the next ones."""
    window = 32
    """Posts claimed at once: a transaction costs more than a post to a fast endpoint, so the
    claim's, and that recording the outcomes, are shared by half of them."""
    timeout = 10.0
    """Seconds to connect, and between two reads or writes."""

    def __init__(self, url: str) -> None:
        self._url = url
        parts = urlsplit(url)
        self._parts = parts
        self._target = parts.path or "/"
        if parts.query:
            self._target += f"?{parts.query}"
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"voucherhook/{version()}",
        }
        if parts.username is not None:  # credentials in the URL: HTTP Basic
            self._headers["Authorization"] = _basic_auth(parts.username, parts.password)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._through_proxy = httpx.Client(timeout=self.timeout) if _proxied(parts) else None
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue()

    def send(self, recipient: str, subject: str, body: str, key: str) -> None:
        if recipient != WEBHOOK_RECIPIENT:
            raise Undeliverable(
                f"not sent: a webhook delivery's recipient must be {WEBHOOK_RECIPIENT}; run "
                "`voucherhook migrate`, which rewrites deliveries planned before"
            )
        headers = {**self._headers, "Idempotency-Key": key}
        payload = orjson.dumps({"text": body})
        try:
            if self._through_proxy is not None:
                answer = self._through_proxy.post(self._url, content=payload, headers=headers)
                status, reason = answer.status_code, answer.reason_phrase
            else:
                status, reason = self._post(payload, headers)
        except (httpx.HTTPError, http.client.HTTPException, OSError) as exc:
            raise SendError(
                f"the operations webhook could not be reached ({type(exc).__name__}: "
                f"{self._redact(str(exc))}): check {WEBHOOK_RECIPIENT} and the network"
            ) from None
        if not 200 <= status < 300:
            raise SendError(
                f"the operations webhook answered {status} {reason}: check {WEBHOOK_RECIPIENT}"
            )

    def close(self) -> None:
        """End a task's batch: its connections are closed (a task sends for seconds, so a
        connection serves many posts; none lingers between tasks)."""
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def _post(self, payload: bytes, headers: dict[str, str]) -> tuple[int, str]:
        connection = self._connection()
        try:
            connection.request("POST", self._target, body=payload, headers=headers)
            answer = connection.getresponse()
            answer.read()
        except BaseException:
            connection.close()
            raise
        self._idle.put(connection)  # closed by http.client when the server said so
        return answer.status, answer.reason

    def _connection(self) -> http.client.HTTPConnection:
        """An idle connection the server has not closed meanwhile, or a new one (connected by
        its first request)."""
        while True:
            try:
                connection = self._idle.get_nowait()
            except queue.Empty:
                break
            if connection.sock is None or not _readable(connection.sock):
                return connection
            connection.close()  # the server closed it, or sent what nobody asked for
        host, port = self._parts.hostname or "", self._parts.port
        if self._tls is not None:
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._tls)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _redact(self, text: str) -> str:
        for shown in (self._url, str(httpx.URL(self._url)), self._parts.path):
            if shown and shown != "/":
                text = text.replace(shown, WEBHOOK_RECIPIENT)
        return text


def _proxied(parts: SplitResult) -> bool:
    """Whether the environment names a proxy for this URL."""
    proxies = urllib.request.getproxies()
    if parts.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: the server closed it."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _basic_auth(user: str, password: str | None) -> str:
    """The Authorization header of credentials written in the URL."""
    pair = f"{unquote(user)}:{unquote(password or '')}".encode()
    return f"Basic {base64.b64encode(pair).decode()}"
