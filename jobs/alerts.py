"""Alerts to the people who run the pipeline: a failed task, a refused model and a late run,
sent by Airflow's SMTP notifier (``apache-airflow-providers-smtp``).

Off unless ``RECS_ALERT_EMAIL`` names recipients (comma-separated); the demo sets none. The
mail server is an Airflow SMTP connection, ``RECS_ALERT_SMTP_CONN`` (default
``smtp_default``), made in the UI, by ``airflow connections add`` or in the environment
(``AIRFLOW_CONN_SMTP_DEFAULT='smtp://user:password@mail.internal:587'``); the sender is
``RECS_ALERT_FROM``, else the connection's ``from_email`` extra. A message that cannot be sent
is logged and never fails the task or callback that raised it: the run record in
``recs.pipeline_runs`` is written first either way.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from jobs.logs import get_logger

log = get_logger("alerts")


@dataclass(frozen=True)
class Alert:
    subject: str
    body: str


def failed_task(run_id: str, ds: date, task_id: str, message: str) -> Alert:
    return Alert(f"[recs] {task_id} failed for {ds}",
                 f"Task {task_id} of run {run_id} (ds {ds}) failed; nothing new was published "
                 f"and consumers still read the previous day.\n\n{message}")


def refused_model(run_id: str, ds: date, decision: Mapping) -> Alert:
    return Alert(f"[recs] the quality gate refused the model for {ds}",
                 f"Run {run_id} published {decision['published']} instead of the candidate.\n\n"
                 f"{decision['reason']}")


def late_run(run_id: str, ds: date, message: str) -> Alert:
    return Alert(f"[recs] the run for {ds} is late",
                 f"Run {run_id} (ds {ds}) is {message}; consumers still read an older day.")


def published(run_id: str, ds: date, decision: Mapping) -> bool:
    """After a publish: an alert when the gate refused the candidate (``gate.Decision``)."""
    from pipelines.evaluate.gate import Decision

    if Decision.from_dict(dict(decision)).verdict != "refused":
        return False
    return send(refused_model(run_id, ds, decision))


def recipients(env: Mapping[str, str] = os.environ) -> list[str]:
    return [a.strip() for a in env.get("RECS_ALERT_EMAIL", "").split(",") if a.strip()]


def send(alert: Alert, env: Mapping[str, str] = os.environ) -> bool:
    """Mail ``alert`` when alerts are on; whether it went out."""
    to = recipients(env)
    if not to:
        return False
    try:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        # Given as text, the subject and body are not rendered as templates.
        SmtpNotifier(to=to, from_email=env.get("RECS_ALERT_FROM") or None,
                     subject=alert.subject,
                     html_content=f"<pre>{html.escape(alert.body)}</pre>",
                     smtp_conn_id=env.get("RECS_ALERT_SMTP_CONN", "smtp_default")).notify({})
    except Exception as exc:  # an alert that fails must not hide what it reports
        log.warning("alert %r not sent to %s: %s: %s", alert.subject, ", ".join(to),
                    type(exc).__name__, exc)
        return False
    log.info("alert sent to %s: %s", ", ".join(to), alert.subject)
    return True
