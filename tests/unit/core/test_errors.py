"""One base class for the pipeline's errors, and the Airflow retry policy that reads it."""

from __future__ import annotations

import pytest

from pipelines.core import errors

ERRORS = [c for c in vars(errors).values()
          if isinstance(c, type) and issubclass(c, errors.RecsError) and c is not errors.RecsError]


def test_every_error_says_whether_a_retry_can_help() -> None:
    assert len(ERRORS) >= 11
    retryable = {c.__name__ for c in ERRORS if c.retryable}
    assert retryable == {"WarehouseLocked"}


@pytest.mark.parametrize("cls", ERRORS, ids=lambda c: c.__name__)
def test_airflow_fails_fast_exactly_on_errors_a_retry_would_meet_again(cls) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from jobs.airflow_tasks import for_airflow

    error = cls("the message")
    raised = for_airflow(error)
    if cls.retryable:
        assert raised is error
    else:
        assert isinstance(raised, AirflowFailException)
        assert str(raised) == f"{cls.__name__}: the message"


def test_unexpected_errors_go_to_airflows_retries() -> None:
    from jobs.airflow_tasks import for_airflow

    error = MemoryError("out of memory")
    assert for_airflow(error) is error
