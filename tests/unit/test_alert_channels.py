"""The alert channels against local receivers (no Spark): an HTTP server in a thread and aiosmtpd's SMTP server.

Everything binds to 127.0.0.1 and is stopped by the fixture or context manager that started it, also on failure;
back-off sleeps are injected, so the file runs in a few seconds.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from lakehouse.channels import (
    KEY_HEADER,
    EmailChannel,
    Message,
    SecretError,
    WebhookChannel,
    channel_from_dict,
    message_id,
    read_secret,
)

TOKEN = "xoxb-SECRET-TOKEN-7f3a9c"
PASSWORD = "pa55-SECRET-word"
MESSAGE = Message(subject="Morning brief 2025-07-06", text="3 new anomalies\n• *DAU* down 40%", key="brief-2025-07-06")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    # A proxy in the environment would carry the requests to 127.0.0.1 away from the local receiver.
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


class Sleeps(list):
    """An injected ``sleep`` that records the pauses asked for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 nobody listens on: bound (so no one else takes it meanwhile) but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


# --- the HTTP receiver ------------------------------------------------------------------------------------------


@dataclass
class Receiver:
    """Answers each POST with the next action of ``script`` (the last one repeats): a status, (status, headers)
    or ("sleep", seconds)."""

    port: int = 0
    script: list[Any] = field(default_factory=lambda: [200])
    requests: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = f"/services/T000/B000/{TOKEN}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        receiver: Receiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        index = min(len(receiver.requests), len(receiver.script)) - 1
        action = receiver.script[index]
        if isinstance(action, tuple) and action[0] == "sleep":  # longer than the client's timeout
            receiver.stop.wait(action[1])
            return  # no answer: the client has given up, or the test is over
        status, headers = (action, {}) if isinstance(action, int) else action
        payload = b"ok" if status < 300 else b"invalid_payload" if status == 400 else b""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # keeps pytest's output clean
        pass


@contextmanager
def http_receiver(tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    receiver = server.receiver = Receiver(port=server.server_address[1])  # type: ignore[attr-defined]
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stop.set()  # wakes a handler still "sleeping"
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with http_receiver() as started:
        yield started


def webhook(monkeypatch, url: str, **kwargs: Any) -> WebhookChannel:
    monkeypatch.setenv("TEST_ALERT_WEBHOOK_URL", url)
    return WebhookChannel(name="team", url_env="TEST_ALERT_WEBHOOK_URL", **kwargs)


# --- webhook ----------------------------------------------------------------------------------------------------


def test_webhook_delivered_once_with_slack_json_and_the_key_header(monkeypatch, receiver):
    delivery = webhook(monkeypatch, receiver.url()).send(MESSAGE, sleep=Sleeps())
    assert (delivery.channel, delivery.status, delivery.attempts, delivery.error) == ("team", "delivered", 1, None)
    assert delivery.delivered
    [request] = receiver.requests
    assert request["path"] == f"/services/T000/B000/{TOKEN}"
    assert json.loads(request["body"]) == {"text": "*Morning brief 2025-07-06*\n3 new anomalies\n• *DAU* down 40%"}
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"][KEY_HEADER] == "brief-2025-07-06"


def test_webhook_500_then_200_is_delivered_on_attempt_2(monkeypatch, receiver):
    receiver.script = [500, 200]
    sleeps = Sleeps()
    delivery = webhook(monkeypatch, receiver.url(), backoff_seconds=0.5).send(MESSAGE, sleep=sleeps)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert sleeps == [0.5]
    # The same message with the same key both times: the receiver can tell a re-send.
    assert [r["headers"][KEY_HEADER] for r in receiver.requests] == ["brief-2025-07-06"] * 2


def test_webhook_500_always_fails_after_all_attempts_naming_the_status_not_the_url(monkeypatch, receiver):
    receiver.script = [500]
    sleeps = Sleeps()
    delivery = webhook(monkeypatch, receiver.url(), attempts=3, backoff_seconds=1.0).send(MESSAGE, sleep=sleeps)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert len(receiver.requests) == 3
    assert sleeps == [1.0, 2.0]  # doubling, and no pause after the last attempt
    assert "HTTP 500" in delivery.error
    assert TOKEN not in delivery.error and "127.0.0.1" not in delivery.error and "\n" not in delivery.error


def test_webhook_429_is_retried_honouring_retry_after(monkeypatch, receiver):
    receiver.script = [(429, {"Retry-After": "7"}), 200]
    sleeps = Sleeps()
    delivery = webhook(monkeypatch, receiver.url(), backoff_seconds=1.0).send(MESSAGE, sleep=sleeps)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert sleeps == [7.0]


def test_webhook_timeout_fails_in_bounded_time(monkeypatch, receiver):
    receiver.script = [("sleep", 5.0)]
    channel = webhook(monkeypatch, receiver.url(), timeout_seconds=0.3, attempts=2)
    started = time.monotonic()
    delivery = channel.send(MESSAGE, sleep=Sleeps())
    elapsed = time.monotonic() - started
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert "timed out" in delivery.error
    assert elapsed < 2.0  # two attempts of 0.3 s, not the receiver's 5 s


def test_webhook_receiver_down_fails_with_connection_refused_and_no_url(monkeypatch):
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}/services/T000/B000/{TOKEN}"
        delivery = webhook(monkeypatch, url, attempts=2).send(MESSAGE, sleep=Sleeps())
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    assert "connection refused" in delivery.error
    assert TOKEN not in delivery.error and "/services" not in delivery.error


def test_webhook_400_is_not_retried(monkeypatch, receiver):
    receiver.script = [400]
    sleeps = Sleeps()
    delivery = webhook(monkeypatch, receiver.url()).send(MESSAGE, sleep=sleeps)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert len(receiver.requests) == 1 and sleeps == []
    assert delivery.error == "HTTP 400 Bad Request: invalid_payload"


def test_webhook_redirect_is_not_followed(monkeypatch, receiver):
    receiver.script = [(302, {"Location": "http://127.0.0.1:1/elsewhere"})]
    delivery = webhook(monkeypatch, receiver.url()).send(MESSAGE, sleep=Sleeps())
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "HTTP 302" in delivery.error and "redirect" in delivery.error


def test_webhook_https_with_an_untrusted_certificate_fails_without_retry(monkeypatch, certificate):
    with http_receiver(tls=_server_tls(certificate)) as tls_receiver:
        url = tls_receiver.url().replace("http://", "https://")
        delivery = webhook(monkeypatch, url).send(MESSAGE, sleep=Sleeps())
        assert tls_receiver.requests == []
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "certificate" in delivery.error and TOKEN not in delivery.error


@pytest.mark.parametrize("url", [f"ftp://example.com/{TOKEN}", f"file:///tmp/{TOKEN}", f"hooks.example.com/{TOKEN}"])
def test_webhook_refuses_a_non_http_url_without_an_attempt(monkeypatch, url):
    delivery = webhook(monkeypatch, url).send(MESSAGE, sleep=Sleeps())
    assert (delivery.status, delivery.attempts) == ("failed", 0)
    assert "http:// or https://" in delivery.error and TOKEN not in delivery.error


def test_webhook_without_a_url_fails_instead_of_raising(monkeypatch):
    monkeypatch.delenv("TEST_ALERT_UNSET_URL", raising=False)
    delivery = WebhookChannel(name="team", url_env="TEST_ALERT_UNSET_URL").send(MESSAGE, sleep=Sleeps())
    assert (delivery.status, delivery.attempts) == ("failed", 0)
    assert "no webhook URL" in delivery.error and "TEST_ALERT_UNSET_URL" in delivery.error


# --- secrets ----------------------------------------------------------------------------------------------------


def _secret_file(tmp_path: Path, mode: int, value: str = f"  https://hooks.example.com/{TOKEN}\n") -> Path:
    path = tmp_path / "webhook_url"
    path.write_text(value)
    path.chmod(mode)
    return path


def test_secret_file_with_mode_644_is_refused(tmp_path, monkeypatch):
    path = _secret_file(tmp_path, 0o644)
    with pytest.raises(SecretError) as raised:
        read_secret(None, str(path), "webhook URL")
    message = str(raised.value)
    assert str(path) in message and "644" in message and "chmod 600" in message
    assert TOKEN not in message
    # Through a channel: a failed delivery saying the same, not an exception.
    delivery = WebhookChannel(name="team", url_file=str(path)).send(MESSAGE, sleep=Sleeps())
    assert (delivery.status, delivery.attempts) == ("failed", 0) and "chmod 600" in delivery.error


def test_secret_file_with_mode_600_is_read_and_stripped(tmp_path):
    path = _secret_file(tmp_path, 0o600)
    assert read_secret(None, str(path), "webhook URL") == f"https://hooks.example.com/{TOKEN}"


def test_secret_env_wins_over_file_and_neither_is_none(tmp_path, monkeypatch):
    path = _secret_file(tmp_path, 0o600)
    monkeypatch.setenv("TEST_ALERT_SECRET", " from-env ")
    assert read_secret("TEST_ALERT_SECRET", str(path), "webhook URL") == "from-env"
    monkeypatch.setenv("TEST_ALERT_SECRET", "")  # empty counts as unset: the file is next
    assert read_secret("TEST_ALERT_SECRET", str(path), "webhook URL") == f"https://hooks.example.com/{TOKEN}"
    monkeypatch.delenv("TEST_ALERT_SECRET")
    assert read_secret("TEST_ALERT_SECRET", None, "webhook URL") is None
    assert read_secret(None, None, "webhook URL") is None


def test_secret_file_missing_is_an_error_naming_it(tmp_path):
    with pytest.raises(SecretError, match="missing_file"):
        read_secret(None, str(tmp_path / "missing_file"), "SMTP password")


# --- the SMTP server --------------------------------------------------------------------------------------------


class _PortZeroController(Controller):
    """aiosmtpd's Controller on a free port: it learns the port the system chose before its start-up probe."""

    def _trigger_server(self) -> None:
        if self.port == 0:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class Mailbox:
    """The messages the SMTP server accepted; ``replies`` scripts handle_DATA's answers (the last one repeats)."""

    port: int = 0
    replies: list[str] = field(default_factory=lambda: ["250 Message accepted"])
    messages: list[dict[str, Any]] = field(default_factory=list)
    data_commands: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_commands += 1
        reply = self.replies[min(self.data_commands, len(self.replies)) - 1]
        if reply.startswith("250"):
            self.messages.append(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": list(envelope.rcpt_tos),
                    "message": email.message_from_bytes(envelope.original_content, policy=email.policy.default),
                    "tls": session.ssl is not None,
                    "authenticated": bool(session.authenticated),
                }
            )
        return reply


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"alerts",
        PASSWORD.encode(),
    )
    # handled=False: aiosmtpd answers the failure itself (535) instead of leaving the client waiting.
    return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(**smtp_parameters: Any) -> Iterator[Mailbox]:
    mailbox = Mailbox()
    controller = _PortZeroController(
        mailbox, hostname="127.0.0.1", port=0, server_hostname="localhost", **smtp_parameters
    )
    try:
        controller.start()
        mailbox.port = controller.port
        yield mailbox
    finally:
        controller.stop(no_assert=True)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost), made with the openssl command line."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


def mail(port: int, **kwargs: Any) -> EmailChannel:
    settings: dict[str, Any] = {
        "name": "team-mail",
        "host": "127.0.0.1",
        "port": port,
        "sender": "Lakehouse <lakehouse@example.com>",
        "recipients": ("data-team@example.com", "oncall@example.com"),
        "timeout_seconds": 5,
    }
    return EmailChannel(**{**settings, **kwargs})


def _with_password(monkeypatch) -> dict[str, Any]:
    monkeypatch.setenv("TEST_ALERT_SMTP_PASSWORD", PASSWORD)
    return {"username": "alerts", "password_env": "TEST_ALERT_SMTP_PASSWORD"}


# --- email ------------------------------------------------------------------------------------------------------


def test_email_without_starttls_offered_auto_and_no_password_is_delivered():
    with smtp_server() as mailbox:
        delivery = mail(mailbox.port).send(MESSAGE, sleep=Sleeps())
        again = mail(mailbox.port).send(MESSAGE, sleep=Sleeps())
    assert (delivery.channel, delivery.status, delivery.attempts, delivery.error) == ("team-mail", "delivered", 1, None)
    assert again.delivered
    first, second = mailbox.messages
    assert first["mail_from"] == "lakehouse@example.com"
    assert first["rcpt_tos"] == ["data-team@example.com", "oncall@example.com"]
    assert not first["tls"]
    message = first["message"]
    assert message["Subject"] == "Morning brief 2025-07-06"
    assert message["From"] == "Lakehouse <lakehouse@example.com>"
    assert message["To"] == "data-team@example.com, oncall@example.com"
    assert message["Date"]
    assert message[KEY_HEADER] == "brief-2025-07-06"
    assert message.get_content().replace("\r\n", "\n") == "3 new anomalies\n• *DAU* down 40%\n"  # CRLF on the wire
    # A re-send carries the same Message-ID, derived from the key.
    assert message["Message-ID"] == second["message"]["Message-ID"] == message_id(MESSAGE.key, "lakehouse@example.com")
    assert message["Message-ID"].startswith("<lakehouse.brief-2025-07-06.")
    assert message["Message-ID"].endswith("@example.com>")


def test_email_over_starttls_with_login_is_delivered(certificate, monkeypatch):
    with smtp_server(
        tls_context=_server_tls(certificate), authenticator=_authenticator, auth_require_tls=True
    ) as mailbox:
        channel = mail(mailbox.port, starttls="required", ca_file=str(certificate[0]), **_with_password(monkeypatch))
        delivery = channel.send(MESSAGE, sleep=Sleeps())
    assert (delivery.status, delivery.attempts, delivery.error) == ("delivered", 1, None)
    [received] = mailbox.messages
    assert received["tls"] and received["authenticated"]
    assert received["message"][KEY_HEADER] == "brief-2025-07-06"


def test_email_with_an_untrusted_certificate_fails_without_retry(certificate):
    with smtp_server(tls_context=_server_tls(certificate)) as mailbox:
        delivery = mail(mailbox.port).send(MESSAGE, sleep=Sleeps())  # no ca_file: the system's CAs
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "certificate" in delivery.error and "ca_file" in delivery.error
    assert mailbox.messages == []


def test_email_wrong_password_is_not_retried(certificate, monkeypatch):
    monkeypatch.setenv("TEST_ALERT_SMTP_PASSWORD", "wrong-SECRET")
    with smtp_server(tls_context=_server_tls(certificate), authenticator=_authenticator) as mailbox:
        channel = mail(
            mailbox.port, ca_file=str(certificate[0]), username="alerts", password_env="TEST_ALERT_SMTP_PASSWORD"
        )
        delivery = channel.send(MESSAGE, sleep=Sleeps())
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "authentication failed" in delivery.error and "wrong-SECRET" not in delivery.error


def test_email_starttls_required_without_it_offered_fails():
    with smtp_server() as mailbox:
        delivery = mail(mailbox.port, starttls="required").send(MESSAGE, sleep=Sleeps())
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "did not offer STARTTLS" in delivery.error
    assert mailbox.messages == []


def test_email_password_without_tls_is_refused_and_not_in_the_error(monkeypatch):
    with smtp_server() as mailbox:
        delivery = mail(mailbox.port, **_with_password(monkeypatch)).send(MESSAGE, sleep=Sleeps())
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "refusing to send the password in clear" in delivery.error
    assert PASSWORD not in delivery.error
    assert mailbox.messages == []


def test_email_transient_4xx_is_retried_and_5xx_is_not():
    with smtp_server() as mailbox:
        mailbox.replies = ["451 4.3.0 Try again later", "250 Message accepted"]
        retried = mail(mailbox.port).send(MESSAGE, sleep=Sleeps())
    assert (retried.status, retried.attempts) == ("delivered", 2)
    with smtp_server() as mailbox:
        mailbox.replies = ["554 5.7.1 Rejected"]
        rejected = mail(mailbox.port).send(MESSAGE, sleep=Sleeps())
    assert (rejected.status, rejected.attempts) == ("failed", 1)
    assert "554" in rejected.error


def test_email_server_down_fails_after_all_attempts():
    sleeps = Sleeps()
    with closed_port() as port:
        delivery = mail(port, attempts=3, backoff_seconds=0.5).send(MESSAGE, sleep=sleeps)
    assert (delivery.status, delivery.attempts) == ("failed", 3)
    assert "connection refused" in delivery.error
    assert sleeps == [0.5, 1.0]


# --- configuration ----------------------------------------------------------------------------------------------


def test_channel_from_dict_builds_a_webhook():
    channel = channel_from_dict(
        "team", {"type": "webhook", "url_env": "ALERT_WEBHOOK_URL", "url_file": "/run/secrets/hook", "attempts": 2}
    )
    assert channel == WebhookChannel(name="team", url_env="ALERT_WEBHOOK_URL", url_file="/run/secrets/hook", attempts=2)


def test_channel_from_dict_builds_an_email_channel():
    channel = channel_from_dict(
        "team-mail",
        {
            "type": "email",
            "host": "smtp.example.com",
            "port": 587,
            "sender": "lakehouse@example.com",
            "recipients": ["data-team@example.com", "oncall@example.com"],
            "starttls": "required",
            "username": "alerts",
            "password_file": "/run/secrets/smtp_password",
            "timeout_seconds": 5,
        },
    )
    assert isinstance(channel, EmailChannel)
    assert channel.recipients == ("data-team@example.com", "oncall@example.com")
    assert (channel.host, channel.port, channel.starttls, channel.timeout_seconds) == (
        "smtp.example.com",
        587,
        "required",
        5.0,
    )
    assert (channel.attempts, channel.backoff_seconds, channel.ca_file) == (3, 1.0, None)


_EMAIL = {"type": "email", "host": "smtp.example.com", "sender": "a@example.com", "recipients": ["b@example.com"]}


@pytest.mark.parametrize(
    ("data", "names"),
    [
        pytest.param({**_EMAIL, "hots": "smtp.example.com"}, "'hots'", id="unknown-key"),
        pytest.param({k: v for k, v in _EMAIL.items() if k != "host"}, "'host'", id="missing-host"),
        pytest.param({**_EMAIL, "starttls": "yes"}, "starttls", id="bad-starttls"),
        pytest.param({**_EMAIL, "type": "pager"}, "'type'", id="bad-type"),
        pytest.param({"url_env": "X"}, "'type'", id="missing-type"),
        pytest.param({**_EMAIL, "port": "587"}, "'port'", id="port-not-an-integer"),
        pytest.param({**_EMAIL, "recipients": []}, "recipients", id="no-recipients"),
        pytest.param({**_EMAIL, "username": "alerts"}, "username", id="username-without-password"),
        pytest.param({**_EMAIL, "starttls": "off", "username": "u", "password_env": "P"}, "in clear", id="clear-pw"),
        pytest.param({"type": "webhook"}, "url_env or url_file", id="webhook-without-url"),
        pytest.param({"type": "webhook", "url_env": "X", "attempts": 0}, "attempts", id="zero-attempts"),
    ],
)
def test_channel_from_dict_rejects_bad_config_naming_the_channel_and_key(data, names):
    with pytest.raises(ValueError) as raised:
        channel_from_dict("team", data)
    assert "'team'" in str(raised.value) and names in str(raised.value)


def test_channel_from_dict_never_echoes_a_url_pasted_into_url_env():
    with pytest.raises(ValueError, match="url_env") as raised:
        channel_from_dict("team", {"type": "webhook", "url_env": f"https://hooks.example.com/{TOKEN}"})
    assert TOKEN not in str(raised.value)


def test_message_rejects_a_line_break_in_key_or_subject():
    with pytest.raises(ValueError, match="key"):
        Message(subject="s", text="t", key="a\r\nBcc: someone@example.com")
    with pytest.raises(ValueError, match="subject"):
        Message(subject="one\ntwo", text="t", key="k")
