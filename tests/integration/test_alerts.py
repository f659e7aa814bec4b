"""The morning brief (lakehouse/alerts/brief.py) on copies of the sample's warehouse, delivered to a local HTTP
receiver (a Slack-compatible webhook) and a local SMTP server (aiosmtpd), both on 127.0.0.1:

- delivered once to each channel, with the findings (the sample's anomalies, quarantined rows, stale data) and
  the audiences' sizes; a rerun with nothing new sends nothing;
- a receiver that is down: the run stays green, the failed delivery is recorded and owed; once it is up, the
  next run delivers what was owed, once;
- a receiver that answers 500 and then times out: bounded retries, the run green, the delivery owed;
- ``lakehouse run`` sends its brief after publishing and says so under its summary; ``lakehouse alerts preview``
  and ``lakehouse alerts test`` against the same receivers. About 60 s after the sample's pipeline.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from lakehouse import delta_rs, launcher
from lakehouse.alerts import brief
from lakehouse.alerts.brief import main as alerts
from lakehouse.registry import OPS_ALERT_DELIVERIES
from tests.conftest import SAMPLE_FILES, make_config
from tests.unit.test_alert_channels import closed_port, http_receiver, smtp_server

pytestmark = pytest.mark.e2e

URL_ENV = "TEST_BRIEF_WEBHOOK_URL"


def _channels(mail_port: int | None = None, **webhook) -> dict:
    channels = {"team": {"type": "webhook", "url_env": URL_ENV, "backoff_seconds": 0, **webhook}}
    if mail_port is not None:
        channels["mail"] = {"type": "email", "host": "127.0.0.1", "port": mail_port, "sender": "lakehouse@localhost",
                            "recipients": ["growth@localhost"], "starttls": "auto", "backoff_seconds": 0}  # fmt: skip
    return channels


@pytest.fixture
def warehouse(sample_pipeline, tmp_path):
    shutil.copytree(sample_pipeline.paths.warehouse, tmp_path / "wh")
    return tmp_path / "wh"


def _deliveries(config) -> list[dict]:
    return delta_rs.read_rows(OPS_ALERT_DELIVERIES, config) if delta_rs.exists(OPS_ALERT_DELIVERIES, config) else []


def test_the_brief_goes_once_to_each_channel_and_a_rerun_sends_nothing(spark, warehouse, monkeypatch):
    with http_receiver() as receiver, smtp_server() as mailbox:
        monkeypatch.setenv(URL_ENV, receiver.url())
        config = make_config(warehouse, alerts__channels=_channels(mailbox.port))
        outcomes = brief.deliver(config, "run-1", published=True, session=lambda: spark)
        assert [(o.channel, o.delivery.status) for o in outcomes] == [("team", "delivered"), ("mail", "delivered")]
        (request,) = receiver.requests
        text = json.loads(request["body"])["text"]
        assert "*New anomalies*" in text and "events in all on 2025-07-05: 290, expected 211" in text
        assert "rows quarantined" in text and "*Stale data*" in text
        assert "*Audiences* (week of 2025-06-29, change from the week of 2025-06-22)" in text
        assert "• just_churned: " in text and "• negative_balance: " in text
        (mail,) = mailbox.messages
        assert mail["message"]["Subject"].startswith("HeyMax lakehouse brief: ")
        assert "events in all on 2025-07-05" in mail["message"].get_content()
        rows = _deliveries(config)
        assert sorted((r["channel"], r["status"]) for r in rows) == [("mail", "delivered"), ("team", "delivered")]
        keys = set(rows[0]["item_keys"])
        assert "anomaly:events:day:all:2025-07-05" in keys and any(k.startswith("stale:") for k in keys)
        assert set(rows[1]["item_keys"]) == keys

        # Nothing new published and nothing owed: nothing is sent, nothing recorded.
        outcomes = brief.deliver(config, "run-2", published=False, session=lambda: spark)
        assert [o.delivery for o in outcomes] == [None, None]
        assert len(receiver.requests) == 1 and len(mailbox.messages) == 1 and len(_deliveries(config)) == 2


def test_a_channel_that_is_down_is_owed_and_the_next_run_delivers_it_once(spark, warehouse, monkeypatch):
    with closed_port() as port:
        monkeypatch.setenv(URL_ENV, f"http://127.0.0.1:{port}/services/T0/B0/secret-token")
        config = make_config(warehouse, alerts__channels=_channels(attempts=2))
        (outcome,) = brief.deliver(config, "run-1", published=True, session=lambda: spark)
    assert outcome.delivery.status == "failed" and outcome.delivery.attempts == 2
    assert "owed to the next run" in outcome.describe() and "secret-token" not in outcome.describe()
    (failed,) = _deliveries(config)
    assert failed["status"] == "failed" and failed["item_keys"] and "secret-token" not in failed["error"]
    with http_receiver() as receiver:
        monkeypatch.setenv(URL_ENV, receiver.url())
        (outcome,) = brief.deliver(config, "run-2", published=False, session=lambda: spark)  # nothing new: owed only
        assert outcome.delivery.status == "delivered" and outcome.items == len(failed["item_keys"])
        (outcome,) = brief.deliver(config, "run-3", published=False, session=lambda: spark)
        assert outcome.delivery is None and len(receiver.requests) == 1
    delivered = [r for r in _deliveries(config) if r["status"] == "delivered"]
    assert len(delivered) == 1 and set(delivered[0]["item_keys"]) == set(failed["item_keys"])


def test_a_receiver_answering_500_then_timing_out_is_retried_a_bounded_time_and_owed(spark, warehouse, monkeypatch):
    with http_receiver() as receiver:
        receiver.script = [500, ("sleep", 10)]
        monkeypatch.setenv(URL_ENV, receiver.url())
        config = make_config(warehouse, alerts__channels=_channels(attempts=2, timeout_seconds=1))
        began = time.monotonic()
        (outcome,) = brief.deliver(config, "run-1", published=True, session=lambda: spark)
        assert time.monotonic() - began < 30
    assert (outcome.delivery.status, outcome.delivery.attempts, len(receiver.requests)) == ("failed", 2, 2)
    assert "timed out" in outcome.delivery.error.lower()
    assert [r["status"] for r in _deliveries(config)] == ["failed"]


def test_lakehouse_run_sends_its_brief_after_publishing_and_the_cli_previews_and_tests(
    warehouse, tmp_path, monkeypatch, capsys
):
    landing = tmp_path / "in"
    landing.mkdir()
    for path in SAMPLE_FILES:
        shutil.copy(path, landing / path.name)
    day = landing / "event_stream_2025-07-06.csv"
    lines = SAMPLE_FILES[-1].read_text().splitlines()
    day.write_text("\n".join([lines[0], *[line.replace("2025-07-05", "2025-07-06", 1) for line in lines[-40:]
                                          if line.startswith("2025-07-05")]]) + "\n")  # fmt: skip
    channels = json.dumps(_channels())
    args = ["--env", "local", "--input", str(landing), "--warehouse", str(warehouse), "--set",
            "spark.shuffle_partitions=2", "--set", f"alerts.channels={channels}"]  # fmt: skip
    with http_receiver() as receiver:
        monkeypatch.setenv(URL_ENV, receiver.url())
        assert launcher.run_main(args) == 0
        out = capsys.readouterr().out
        assert "Morning brief:\n  team: brief delivered" in out
        assert len(receiver.requests) == 1
        assert launcher.run_main(args) == 0  # nothing new: no message
        assert len(receiver.requests) == 1
        assert "team: nothing to send (nothing new, nothing owed)" in capsys.readouterr().out

        common = ["--env", "local", "--warehouse", str(warehouse), "--set", f"alerts.channels={channels}"]
        assert alerts(["preview", *common]) == 0
        assert capsys.readouterr().out.startswith("Subject: HeyMax lakehouse brief: ")
        assert alerts(["test", "team", *common]) == 0
        assert "A test of the alert channel 'team'" in receiver.requests[-1]["body"].decode()
        assert alerts(["test", "nobody", *common]) == 2
    assert Path(warehouse).exists()
