"""How one message of the morning brief reaches the team: a webhook (Slack-compatible JSON) or email (SMTP).

The delivery contract:

- ``send`` never raises for a delivery problem. A receiver that is down, slow, refusing or misconfigured must not
  fail the pipeline, so every outcome is a :class:`Delivery` (``delivered`` or ``failed``, the attempts made, a
  short one-line error, the seconds spent) that the caller records; it re-sends what is still owed on the next run
  with the same :attr:`Message.key`, sent as the header ``X-Lakehouse-Delivery-Key`` (and, for email, folded into
  the Message-ID) so that a receiver, or a person, can recognise a re-send.
- Retries are bounded: at most ``attempts`` attempts in all, sleeping ``backoff_seconds`` between the first two and
  twice as long before each next one (an HTTP ``Retry-After`` asks for longer, up to 60 s), every network operation
  bounded by ``timeout_seconds``. Only what may heal within seconds is retried: connection errors, timeouts, HTTP
  429 and 5xx, SMTP 4xx (transient) replies. Other HTTP 4xx, redirects (never followed: urllib would turn the POST
  into a GET), SMTP 5xx (permanent) replies, failed authentication, an untrusted TLS certificate and configuration
  errors fail at once: repeating them now would only delay the pipeline, and the next run tries again anyway.
- Secrets (a webhook URL, which holds the token of a Slack incoming webhook, and the SMTP password) come from an
  environment variable or from a file only its owner can read (:func:`read_secret`), are read at send time (a
  rotated secret is picked up by the next run), and never appear in a log line, an exception or a
  :class:`Delivery`: every error text passes through a redaction of the secret (and of the URL's path and query)
  before it is logged or returned.
- TLS: https webhooks verify the server's certificate and host name against the system's CAs (no switch to turn
  that off). Email uses STARTTLS with a verifying context (the system's CAs, or ``ca_file`` for a private CA) when
  the server offers it (``starttls: auto``), fails without it (``required``) or never tries it (``off``), and sends
  a password only over TLS: a server that does not offer STARTTLS gets no password, and the delivery fails saying so.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import http.client
import json
import logging
import os
import re
import smtplib
import socket
import ssl
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, fields
from email.message import EmailMessage
from typing import Any

log = logging.getLogger(__name__)

KEY_HEADER = "X-Lakehouse-Delivery-Key"
STARTTLS_MODES = ("auto", "required", "off")
DELIVERED = "delivered"
FAILED = "failed"

_MAX_ERROR_CHARS = 300
# A server may ask for a longer pause (Retry-After); honoured up to this, so that one slow receiver cannot hold the
# morning run for long.
_MAX_RETRY_AFTER_SECONDS = 60.0
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

Sleep = Callable[[float], None]


# --- secrets ----------------------------------------------------------------------------------------------------


class SecretError(ValueError):
    """A secret's file is missing, unreadable or readable by others; the message names the file, never the secret."""


def read_secret(env: str | None, file: str | None, what: str) -> str | None:
    """The secret in environment variable ``env`` if set, else in ``file``, stripped; None when neither is set.

    ``what`` says which secret it is, for the error message. An empty value counts as unset (``X=`` in a compose
    file). The file must be mode 600 or stricter: a secret readable by group or others has already leaked.
    """
    if env:
        value = os.environ.get(env, "").strip()
        if value:
            return value
    if not file:
        return None
    path = os.path.expanduser(file)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise SecretError(f"{what}: cannot read {file}: {exc.strerror or type(exc).__name__}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretError(f"{what}: {file} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise SecretError(f"{what}: {file} has mode {mode:03o}, open to group or others; run: chmod 600 {file}")
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except (OSError, UnicodeError) as exc:
        # The type only: a decoding error's text quotes bytes of the secret.
        raise SecretError(f"{what}: cannot read {file}: {type(exc).__name__}") from None
    return value or None


def _redactor(secrets: Iterable[str | None]) -> Callable[[str], str]:
    """A function making an error text safe to log and return: secrets replaced, one line, short."""
    pieces = sorted({s for s in secrets if s}, key=len, reverse=True)  # longest first: a URL before its path

    def redact(text: str) -> str:
        for piece in pieces:
            text = text.replace(piece, "[redacted]")
        text = " ".join(text.split())
        # Truncated after redaction, so that a cut can never leave part of a secret behind.
        return text if len(text) <= _MAX_ERROR_CHARS else text[: _MAX_ERROR_CHARS - 1] + "…"

    return redact


def _url_secrets(url: str) -> list[str]:
    """The URL and the parts of it that carry its token, for redaction (an error may quote only the path)."""
    parts = urllib.parse.urlsplit(url)
    pieces = [url, parts.path, parts.query, parts.fragment, f"{parts.path}?{parts.query}"]
    pieces += [segment for segment in parts.path.split("/") if len(segment) >= 8]
    if parts.password:
        pieces.append(parts.password)
    # Short pieces ("/", "") would mangle every message without hiding anything.
    return [url, *(p for p in pieces if len(p) >= 4)]


def _password_secrets(password: str | None) -> list[str]:
    if not password:
        return []
    # smtplib sends LOGIN credentials base64-encoded: a server echoing them must not leak them either.
    return [password, base64.b64encode(password.encode()).decode()]


# --- messages and results ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One message: ``subject`` (one line), ``text`` (plain text, Slack mrkdwn-compatible), ``key`` (idempotency)."""

    subject: str
    text: str
    key: str

    def __post_init__(self) -> None:
        # Both end up in headers, where a line break would be header injection.
        for name in ("subject", "key"):
            value = getattr(self, name)
            if not isinstance(value, str) or "\r" in value or "\n" in value:
                raise ValueError(f"Message.{name} must be a one-line string")
        if not self.key.strip():
            raise ValueError("Message.key must not be empty")


@dataclass(frozen=True)
class Delivery:
    """What became of one message on one channel; ``error`` is short, one line and free of secrets."""

    channel: str
    status: str  # "delivered" | "failed"
    attempts: int
    error: str | None
    seconds: float

    @property
    def delivered(self) -> bool:
        return self.status == DELIVERED


class _Transient(Exception):
    """A failure worth another attempt; ``wait`` is the pause the server asked for (Retry-After), if any."""

    def __init__(self, error: str, wait: float = 0.0) -> None:
        super().__init__(error)
        self.error = error
        self.wait = wait


class _Permanent(Exception):
    """A failure that another attempt within seconds would only repeat."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def _result(channel: str, status: str, attempts: int, error: str | None, start: float) -> Delivery:
    delivery = Delivery(channel, status, attempts, error, round(time.monotonic() - start, 3))
    if status == DELIVERED:
        log.info("alert channel %s: delivered (attempt %d)%s", channel, attempts, f"; {error}" if error else "")
    else:
        log.warning("alert channel %s: not delivered after %d attempt(s): %s", channel, attempts, error)
    return delivery


def _deliver(
    channel: str,
    attempts: int,
    backoff_seconds: float,
    sleep: Sleep,
    attempt: Callable[[], str | None],
    redact: Callable[[str], str],
    start: float,
) -> Delivery:
    """Run ``attempt`` (which returns an optional note on success) at most ``attempts`` times, backing off."""
    delay = backoff_seconds
    error = "no attempt made"
    for number in range(1, attempts + 1):
        try:
            note = attempt()
        except _Permanent as exc:
            return _result(channel, FAILED, number, redact(exc.error), start)
        except _Transient as exc:
            error = redact(exc.error)
            if number == attempts:
                break
            wait = max(delay, min(exc.wait, _MAX_RETRY_AFTER_SECONDS))
            log.warning(
                "alert channel %s: attempt %d of %d failed (%s); next in %.1f s", channel, number, attempts, error, wait
            )
            sleep(wait)
            delay *= 2
        except Exception as exc:
            # A bug or an unforeseen library error is still only a failed delivery, never a failed pipeline.
            return _result(channel, FAILED, number, redact(f"{type(exc).__name__}: {exc}"), start)
        else:
            return _result(channel, DELIVERED, number, redact(note) if note else None, start)
    return _result(channel, FAILED, attempts, error, start)


def _describe(exc: BaseException, timeout: float) -> str:
    """A network error in a few words (the exception's own text may quote an address)."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset by the server"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


def _check_common(channel: WebhookChannel | EmailChannel) -> str:
    """Checks shared by both channels; returns the prefix of every error message about this channel."""
    if not isinstance(channel.name, str) or not channel.name.strip():
        raise ValueError("alert channel: the name must be a non-empty string")
    where = f"alert channel {channel.name!r}"
    if not _is_number(channel.timeout_seconds) or not channel.timeout_seconds > 0:
        raise ValueError(f"{where}: timeout_seconds must be a number > 0")
    if not _is_int(channel.attempts) or channel.attempts < 1:
        raise ValueError(f"{where}: attempts must be an integer >= 1")
    if not _is_number(channel.backoff_seconds) or channel.backoff_seconds < 0:
        raise ValueError(f"{where}: backoff_seconds must be a number >= 0")
    return where


def _check_env_name(where: str, key: str, value: str | None) -> None:
    # Never echo the value: a URL or password pasted here by mistake would end up in the error.
    if value is not None and (not isinstance(value, str) or not _ENV_NAME.match(value)):
        raise ValueError(f"{where}: {key} must be the name of an environment variable (letters, digits, _)")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- webhook ----------------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are reported, not followed: urllib re-sends a redirected POST as a GET without its body."""

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> None:
        return None


@dataclass(frozen=True)
class WebhookChannel:
    """POSTs ``{"text": "*<subject>*\\n<text>"}`` (a Slack incoming webhook's format) to a secret URL."""

    name: str
    url_env: str | None = None
    url_file: str | None = None
    timeout_seconds: float = 10
    attempts: int = 3
    backoff_seconds: float = 1.0

    def __post_init__(self) -> None:
        where = _check_common(self)
        _check_env_name(where, "url_env", self.url_env)
        if self.url_file is not None and (not isinstance(self.url_file, str) or not self.url_file):
            raise ValueError(f"{where}: url_file must be a path")
        if not self.url_env and not self.url_file:
            # The URL itself is never in the config: it holds the webhook's token.
            raise ValueError(f"{where}: a webhook needs url_env or url_file (the URL is a secret)")

    def send(self, message: Message, *, sleep: Sleep = time.sleep) -> Delivery:
        start = time.monotonic()
        try:
            url = read_secret(self.url_env, self.url_file, f"alert channel {self.name!r}: webhook URL")
        except SecretError as exc:
            return _result(self.name, FAILED, 0, str(exc), start)
        if not url:
            where = " or ".join(
                f"{kind} {value}" for kind, value in (("env", self.url_env), ("file", self.url_file)) if value
            )
            return _result(self.name, FAILED, 0, f"no webhook URL (looked in {where})", start)
        redact = _redactor(_url_secrets(url))
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            error = f"the webhook URL must be http:// or https:// with a host (scheme: {parts.scheme or 'none'!r})"
            return _result(self.name, FAILED, 0, redact(error), start)

        body = json.dumps({"text": f"*{message.subject}*\n{message.text}"}).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "lakehouse-alerts",
            KEY_HEADER: message.key,
        }
        # Built per send, so that proxy settings (HTTPS_PROXY, NO_PROXY) are those of now; the explicit default
        # context makes the certificate and host-name verification visible rather than implied.
        opener = urllib.request.build_opener(
            _NoRedirect(), urllib.request.HTTPSHandler(context=ssl.create_default_context())
        )

        def attempt() -> None:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            try:
                with opener.open(request, timeout=self.timeout_seconds) as response:
                    response.read(65536)  # drained, so that the server sees a clean end of the exchange
                    status = response.status
            except urllib.error.HTTPError as exc:
                raise _http_failure(exc) from None
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, ssl.SSLCertVerificationError):
                    raise _Permanent(f"TLS certificate not trusted: {reason.verify_message}") from None
                if isinstance(reason, BaseException):
                    raise _Transient(_describe(reason, self.timeout_seconds)) from None
                raise _Permanent(str(reason)) from None
            except (OSError, http.client.HTTPException) as exc:  # raised while reading the response
                raise _Transient(_describe(exc, self.timeout_seconds)) from None
            if not 200 <= status < 300:
                raise _Permanent(f"HTTP {status}")

        return _deliver(self.name, self.attempts, self.backoff_seconds, sleep, attempt, redact, start)


def _http_failure(exc: urllib.error.HTTPError) -> _Transient | _Permanent:
    code = exc.code
    error = f"HTTP {code} {exc.reason}".strip()
    try:
        # Slack says why in a word or two ("invalid_payload", "no_service"): worth keeping, briefly.
        detail = " ".join(exc.read(200).decode("utf-8", "replace").split())[:100]
    except (OSError, http.client.HTTPException):
        detail = ""
    finally:
        exc.close()
    if detail and not detail.startswith("<"):  # not an HTML error page
        error = f"{error}: {detail}"
    if code == 429 or code >= 500:
        return _Transient(error, wait=_retry_after(exc.headers.get("Retry-After")))
    if 300 <= code < 400:
        return _Permanent(f"{error} (redirects are not followed: check the URL)")
    return _Permanent(error)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0  # the HTTP-date form: rare from webhooks, and the back-off applies anyway


# --- email ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EmailChannel:
    """Sends the message as a plain-text email over SMTP (submission port, STARTTLS, optional LOGIN)."""

    name: str
    host: str
    port: int = 587
    sender: str
    recipients: tuple[str, ...]
    starttls: str = "auto"
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    ca_file: str | None = None
    timeout_seconds: float = 10
    attempts: int = 3
    backoff_seconds: float = 1.0

    def __post_init__(self) -> None:
        where = _check_common(self)
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(f"{where}: host must be a host name")
        if not _is_int(self.port) or not 0 < self.port < 65536:
            raise ValueError(f"{where}: port must be an integer from 1 to 65535")
        if not isinstance(self.sender, str) or "@" not in self.sender:
            raise ValueError(f"{where}: sender must be an email address")
        recipients = self.recipients
        if isinstance(recipients, list):
            recipients = tuple(recipients)
            object.__setattr__(self, "recipients", recipients)  # frozen: the one normalisation allowed
        if (
            not isinstance(recipients, tuple)
            or not recipients
            or not all(isinstance(r, str) and "@" in r for r in recipients)
        ):
            raise ValueError(f"{where}: recipients must be a non-empty list of email addresses")
        if self.starttls not in STARTTLS_MODES:
            raise ValueError(f"{where}: starttls must be one of {', '.join(STARTTLS_MODES)}, not {self.starttls!r}")
        _check_env_name(where, "password_env", self.password_env)
        has_password = bool(self.password_env or self.password_file)
        if self.username is not None and (not isinstance(self.username, str) or not self.username):
            raise ValueError(f"{where}: username must be a non-empty string")
        if bool(self.username) != has_password:
            raise ValueError(f"{where}: username and password_env/password_file go together")
        if has_password and self.starttls == "off":
            raise ValueError(f"{where}: starttls 'off' would send the password in clear; use auto or required")
        if self.ca_file is not None and (not isinstance(self.ca_file, str) or not self.ca_file):
            raise ValueError(f"{where}: ca_file must be a path")

    def send(self, message: Message, *, sleep: Sleep = time.sleep) -> Delivery:
        start = time.monotonic()
        password = None
        if self.username:
            try:
                password = read_secret(self.password_env, self.password_file, f"alert channel {self.name!r}: password")
            except SecretError as exc:
                return _result(self.name, FAILED, 0, str(exc), start)
            if not password:
                return _result(self.name, FAILED, 0, "no SMTP password (password_env and password_file empty)", start)
        redact = _redactor(_password_secrets(password))
        try:
            email_message = self._email(message)
        except (ValueError, TypeError) as exc:
            return _result(self.name, FAILED, 0, redact(f"cannot build the email: {exc}"), start)
        try:
            # Verifies the certificate and that it names ``host``; ``ca_file`` adds a private CA to trust.
            context = ssl.create_default_context(cafile=self.ca_file) if self.starttls != "off" else None
        except (OSError, ssl.SSLError) as exc:
            error = f"cannot load ca_file {self.ca_file}: {exc.strerror or type(exc).__name__}"
            return _result(self.name, FAILED, 0, error, start)

        def attempt() -> str | None:
            smtp: smtplib.SMTP | None = None
            try:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds)
                smtp.ehlo()
                tls = False
                if self.starttls != "off" and smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()  # the capabilities said before TLS no longer hold (RFC 3207)
                    tls = True
                elif self.starttls == "required":
                    raise _Permanent(f"the server {self.host}:{self.port} did not offer STARTTLS (starttls: required)")
                if self.username:
                    if not tls:
                        raise _Permanent(
                            f"refusing to send the password in clear: {self.host}:{self.port} did not offer STARTTLS"
                        )
                    smtp.login(self.username, password or "")
                refused = smtp.send_message(email_message, from_addr=self.sender, to_addrs=list(self.recipients))
            except (_Transient, _Permanent):
                raise
            except Exception as exc:
                raise _smtp_failure(exc, self.host, self.port, self.timeout_seconds) from None
            finally:
                if smtp is not None:
                    _close(smtp)
            if refused:
                # Delivered to the others: a re-send would reach them twice, and a refused address stays refused.
                return "refused by the server: " + ", ".join(
                    f"{rcpt} ({code} {_text(reply)})" for rcpt, (code, reply) in refused.items()
                )
            return None

        return _deliver(self.name, self.attempts, self.backoff_seconds, sleep, attempt, redact, start)

    def _email(self, message: Message) -> EmailMessage:
        email_message = EmailMessage()
        email_message["Subject"] = message.subject
        email_message["From"] = self.sender
        email_message["To"] = ", ".join(self.recipients)
        email_message["Date"] = email.utils.formatdate(usegmt=True)
        email_message["Message-ID"] = message_id(message.key, self.sender)
        email_message[KEY_HEADER] = message.key
        email_message.set_content(message.text)
        return email_message


def message_id(key: str, sender: str) -> str:
    """The Message-ID of the message with ``key``: the same on every re-send, readable, and a valid msg-id."""
    slug = re.sub(r"[^A-Za-z0-9-]+", "-", key).strip("-")[:64] or "brief"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]  # tells apart keys with the same slug
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2]
    if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*", domain):
        domain = "lakehouse.invalid"
    return f"<lakehouse.{slug}.{digest}@{domain}>"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _smtp_failure(exc: Exception, host: str, port: int, timeout: float) -> _Transient | _Permanent:
    """Sorts an smtplib / socket / ssl error into retried (4xx, network) or not (5xx, authentication, TLS trust)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return _Permanent(f"authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        error = "all recipients refused: " + ", ".join(
            f"{rcpt} ({code} {_text(reply)})" for rcpt, (code, reply) in exc.recipients.items()
        )
        return _Transient(error) if codes and all(400 <= code < 500 for code in codes) else _Permanent(error)
    if isinstance(exc, smtplib.SMTPResponseException):
        error = f"SMTP {exc.smtp_code} {_text(exc.smtp_error)}"
        return _Transient(error) if 400 <= exc.smtp_code < 500 else _Permanent(error)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _Transient(f"the server closed the connection: {exc}")
    if isinstance(exc, smtplib.SMTPException):
        return _Permanent(f"{type(exc).__name__}: {exc}")  # e.g. AUTH not offered: configuration
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _Permanent(
            f"TLS certificate of {host}:{port} not trusted ({exc.verify_message}); set ca_file for a private CA"
        )
    if isinstance(exc, OSError):  # timeouts, refused and reset connections, other TLS errors
        return _Transient(_describe(exc, timeout))
    return _Permanent(f"{type(exc).__name__}: {exc}")


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except Exception:
        smtp.close()  # the connection is gone or broken: nothing left to say politely


# --- configuration ----------------------------------------------------------------------------------------------

Channel = WebhookChannel | EmailChannel
_TYPES: dict[str, type[WebhookChannel] | type[EmailChannel]] = {"webhook": WebhookChannel, "email": EmailChannel}


def channel_from_dict(name: str, data: Mapping[str, Any]) -> Channel:
    """The channel configured by a YAML mapping with ``type: webhook|email``; ValueError naming it and the key."""
    where = f"alert channel {name!r}"
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping with a 'type' key, not {type(data).__name__}")
    if "type" not in data:
        raise ValueError(f"{where}: missing key 'type' (webhook or email)")
    kind = data["type"]
    cls = _TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"{where}: bad value for 'type': {kind!r} (webhook or email)")
    spec = {f.name: f for f in fields(cls) if f.name != "name"}
    for key in data:
        if key != "type" and key not in spec:
            raise ValueError(
                f"{where}: unknown key {key!r} for a {kind} channel (known: type, {', '.join(sorted(spec))})"
            )
    for key, spec_field in spec.items():
        if spec_field.default is MISSING and key not in data:
            raise ValueError(f"{where}: missing key {key!r} for a {kind} channel")
    values = {key: _value(where, key, value, str(spec[key].type)) for key, value in data.items() if key != "type"}
    return cls(name=name, **values)


def _value(where: str, key: str, value: Any, annotation: str) -> Any:
    """``value`` checked against the field's annotation (a string: ``from __future__ import annotations``)."""
    # Errors name the type, never the value: it could be a secret pasted into the wrong key.
    got = type(value).__name__
    if annotation == "str | None":
        if value is None or isinstance(value, str):
            return value
        raise ValueError(f"{where}: key {key!r} must be a string, not {got}")
    if annotation == "str":
        if isinstance(value, str):
            return value
        raise ValueError(f"{where}: key {key!r} must be a string, not {got}")
    if annotation == "int":
        if _is_int(value):
            return value
        raise ValueError(f"{where}: key {key!r} must be an integer, not {got}")
    if annotation == "float":
        if _is_number(value):
            return float(value)
        raise ValueError(f"{where}: key {key!r} must be a number, not {got}")
    if annotation == "tuple[str, ...]":
        if isinstance(value, str):
            return (value,)  # one recipient written without a list
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return tuple(value)
        raise ValueError(f"{where}: key {key!r} must be a list of strings, not {got}")
    raise AssertionError(f"unhandled annotation {annotation!r}")  # a new field needs a rule here
