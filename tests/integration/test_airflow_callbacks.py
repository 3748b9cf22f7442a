"""What the DAG's sensor, failure callback and deadline callback do, on a real warehouse.

Airflow calls these with its context; here the context holds what Airflow passes (the
deadline callback gets the run as the API's DAGRunResponse JSON).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from jobs.airflow_tasks import on_failure, publish_late, raw_landed
from pipelines.warehouse import open_warehouse

DS = date(2026, 10, 13)
RUN_ID = "scheduled__2026-10-14T00:00:00+00:00"


@pytest.fixture
def env(warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RECS_RAW_ROOT", str(tmp_path / "raw"))
    monkeypatch.setenv("RECS_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("RECS_WAREHOUSE", warehouse_url)
    monkeypatch.delenv("RECS_CONFIG", raising=False)
    return warehouse_url


@dataclass
class _TaskInstance:
    task_id: str


def _task_context(task_id: str, error: BaseException) -> dict:
    return {"ds": DS.isoformat(), "run_id": RUN_ID, "params": {},
            "task_instance": _TaskInstance(task_id), "exception": error}


def _deadline_context() -> dict:
    return {"dag_run": {"dag_run_id": RUN_ID, "dag_id": "recs_nightly",
                        "logical_date": "2026-10-13T00:00:00Z",
                        "data_interval_start": "2026-10-13T00:00:00Z",
                        "queued_at": "2026-10-14T00:00:05Z"},
            "deadline": {"id": "d1", "deadline_time": "2026-10-14T08:00:05+00:00"}}


def _runs(url: str) -> list[tuple]:
    return open_warehouse(url).query(
        "select run_id, ds, status, message from recs.pipeline_runs").rows()


def test_a_missed_deadline_marks_the_run_late_and_its_outcome_keeps_that(env: str) -> None:
    asyncio.run(publish_late(_deadline_context(), hours=8.0))
    [(run_id, ds, status, message)] = _runs(env)
    assert (run_id, ds, status) == (RUN_ID, DS, "late")
    assert message == ("not published by its deadline 2026-10-14T08:00:05+00:00 "
                       "(8 h after it was queued)")
    open_warehouse(env).record_run(RUN_ID, DS, "failed", None, datetime.now(UTC),
                                   "train failed: MemoryError")
    [(_, _, status, message)] = _runs(env)
    assert status == "failed"
    assert message.startswith("train failed: MemoryError (was late: not published by")


def test_a_missed_deadline_never_overwrites_an_outcome(env: str) -> None:
    open_warehouse(env).record_run(RUN_ID, DS, "failed", None, datetime.now(UTC),
                                   "validate failed")
    asyncio.run(publish_late(_deadline_context(), hours=8.0))
    assert [r[2:] for r in _runs(env)] == [("failed", "validate failed")]


def test_failure_callback_records_the_task_and_its_message(env: str) -> None:
    on_failure(_task_context("train", ValueError("no interactions in the window")))
    assert [r[2:] for r in _runs(env)] == [
        ("failed", "train failed: ValueError: no interactions in the window")]


def test_sensor_waits_for_the_partition_and_its_timeout_names_it(env: str, tmp_path: Path,
                                                                  caplog) -> None:
    from datetime import timedelta

    context = _task_context("wait_for_raw", RuntimeError())
    assert not raw_landed(context, timedelta(hours=6))
    (tmp_path / "raw" / "events" / f"ds={DS}").mkdir(parents=True)
    assert raw_landed(context, timedelta(hours=6))  # an empty partition is a delivery

    on_failure(_task_context("wait_for_raw", TimeoutError("Sensor has timed out")))
    [(_, _, status, message)] = _runs(env)
    assert status == "failed"
    assert message.startswith(f"wait_for_raw failed: TimeoutError: {tmp_path}/raw/events/"
                              f"ds={DS} did not land in time")


@dataclass
class _Mailbox:
    """An SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives."""

    received: list

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's)
        self.received.append(envelope)
        return "250 OK"

    def messages(self) -> list:
        from email import message_from_bytes
        from email.policy import default

        return [(e.rcpt_tos, message_from_bytes(e.content, policy=default))
                for e in self.received]


@pytest.fixture
def mailbox(env: str, monkeypatch: pytest.MonkeyPatch):
    import socket

    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = _Mailbox([])
    server = Controller(box, hostname="127.0.0.1", port=port)
    server.start()
    monkeypatch.setenv("AIRFLOW_CONN_RECS_MAIL", f"smtp://127.0.0.1:{port}?disable_tls=true"
                       "&disable_ssl=true&from_email=recs%40example.org")
    monkeypatch.setenv("RECS_ALERT_SMTP_CONN", "recs_mail")
    monkeypatch.setenv("RECS_ALERT_EMAIL", "ops@example.org, oncall@example.org")
    yield box
    server.stop()


def _text(message) -> str:
    import html

    return html.unescape(message.get_body(preferencelist=("html",)).get_content())


def test_a_failed_task_mails_the_operators_what_failed(mailbox: _Mailbox, env: str) -> None:
    on_failure(_task_context("train", ValueError("no interactions in the window")))
    [(to, message)] = mailbox.messages()
    assert to == ["ops@example.org", "oncall@example.org"]
    assert message["From"] == "recs@example.org"
    assert message["Subject"] == f"[recs] train failed for {DS}"
    assert f"Task train of run {RUN_ID} (ds {DS}) failed" in _text(message)
    assert "ValueError: no interactions in the window" in _text(message)
    assert [r[2] for r in _runs(env)] == ["failed"]  # recorded as well


def test_a_late_run_and_a_refused_model_mail_too(mailbox: _Mailbox) -> None:
    from jobs import alerts

    asyncio.run(publish_late(_deadline_context(), hours=8.0))
    decision = {"published": "pop_7d", "popular": "pop_7d", "evaluated": True,
                "ranker_passed": False, "forced": False,
                "reason": "published the best baseline pop_7d: it is surely better", "numbers": {}}
    assert alerts.published(RUN_ID, DS, decision)
    assert not alerts.published(RUN_ID, DS, {**decision, "published": "ranker",
                                             "ranker_passed": True})
    late, refused = (m for _, m in mailbox.messages())
    assert late["Subject"] == f"[recs] the run for {DS} is late"
    assert "not published by its deadline 2026-10-14T08:00:05+00:00" in _text(late)
    assert refused["Subject"] == f"[recs] the quality gate refused the model for {DS}"
    assert f"Run {RUN_ID} published pop_7d instead of the candidate" in _text(refused)
    assert "it is surely better" in _text(refused)


def test_alerts_are_off_without_recipients_and_never_fail_the_callback(
        env: str, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    from jobs import alerts

    assert not alerts.send(alerts.Alert("s", "b"))  # RECS_ALERT_EMAIL unset: off
    monkeypatch.setenv("RECS_ALERT_EMAIL", "ops@example.org")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", "smtp://127.0.0.1:9?disable_tls=true"
                       "&disable_ssl=true&timeout=2&retry_limit=1&from_email=r%40example.org")
    on_failure(_task_context("train", ValueError("boom")))  # nothing listens on port 9
    assert [r[2] for r in _runs(env)] == ["failed"]
    assert "alert '[recs] train failed for 2026-10-13' not sent to ops@example.org" in caplog.text
