"""The Airflow UI in a real browser, on MovieLens days: what an operator does from the UI.

A local Airflow as ``make airflow`` starts it (api-server, scheduler, dag-processor,
triggerer; ``jobs/tools/local_airflow.py``) serves this DAG over the first weeks of MovieLens
100K, their history validated with ``recs backfill --validate-only``. Headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, driven by Selenium) logs in with the printed
password, opens ``recs_nightly``, triggers a run of the first day with the ``top_n`` param, and
creates a backfill of the next two days from the trigger dialog. Once the three runs succeed,
the warehouse holds each day's lists (seven per user on the triggered day), they equal a
``recs run`` of the same days, the days ran oldest first and the task logs carry the run's
context. With ``RECS_UI_SCREENSHOTS=<folder>`` the pages are saved there (the README's images).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from jobs.backfill import backfill
from jobs.context import RunContext, default_run_id
from jobs.flow import run_flow
from jobs.rawdata import write_days
from jobs.tools.local_airflow import USER, LocalAirflow, service_env
from pipelines.core import catalog as cat
from pipelines.core.settings import Settings, replace
from tests.support.workspace import SHORT_TEXTS, make_settings, shared_dataset, write_config

pytestmark = [pytest.mark.slow, pytest.mark.airflow]

# Three weeks into MovieLens 100K (it starts on 1997-09-20): a real history, short enough that a
# night under the scheduler takes seconds of work beside Airflow's own cost.
TRIGGERED = date(1997, 10, 10)
BACKFILLED = [TRIGGERED + timedelta(days=1), TRIGGERED + timedelta(days=2)]
DAYS = [TRIGGERED, *BACKFILLED]
TOP_N = 7
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
COLUMNS = "ds, user_id, rank, item_id, score, reason, model_version"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(root: Path) -> Settings:
    return replace(make_settings(root), validate={"accept_anomalies": True}, embed=SHORT_TEXTS)


@pytest.fixture(scope="module")
def movielens_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MovieLens 100K up to the last test day, its history validated (the days before)."""
    from pipelines.datasets.movielens import load_movielens, to_raw_days

    root = tmp_path_factory.mktemp("ml-ui") / "ws"
    settings = _settings(root)
    days = [d for d in to_raw_days(load_movielens(shared_dataset("ml-100k"))) if d.ds <= DAYS[-1]]
    write_days(settings.raw_root, days, "parquet")
    backfill(settings, None, TRIGGERED - timedelta(days=1), validate_only=True)
    return root


def _published(settings: Settings) -> list[tuple]:
    return RunContext(settings, DAYS[-1], "-").warehouse().query(
        f"select {COLUMNS} from recs.recommendations order by ds, user_id, rank").rows()


def _browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        reason = (f"{CHROMIUM} and {CHROMEDRIVER} not found: apt-get install -y chromium "
                  "chromium-driver (CI's .ci/run does)")
        if os.environ.get("RECS_REQUIRE_BROWSER"):
            pytest.fail(reason + " (RECS_REQUIRE_BROWSER is set)")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class Ui:
    """The pages and dialogs of Airflow 3's UI that the test uses."""

    def __init__(self, driver, url: str, shots: Path | None) -> None:
        self.d, self.url, self.shots = driver, url, shots
        self.wait = WebDriverWait(driver, 60)

    def shot(self, name: str) -> None:
        if self.shots is not None:
            self.shots.mkdir(parents=True, exist_ok=True)
            self.d.save_screenshot(str(self.shots / f"airflow-{name}.png"))

    def find(self, css: str):
        return self.wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, css)))

    def xpath(self, path: str):
        return self.wait.until(ec.element_to_be_clickable((By.XPATH, path)))

    def login(self, password: str) -> None:
        self.d.get(self.url + "/")
        self.wait.until(lambda d: d.find_elements(By.NAME, "username"))
        self.d.find_element(By.NAME, "username").send_keys(USER)
        self.d.find_element(By.NAME, "password").send_keys(password)
        self.d.find_element(By.XPATH, "//button[@type='submit']").click()
        self.wait.until(lambda d: "/auth/login" not in d.current_url)

    def open_dag(self, timeout: float = 180) -> None:
        """The DAG's page, once the dag-processor has parsed it."""
        deadline = time.monotonic() + timeout
        while True:
            self.d.get(self.url + "/dags/recs_nightly")
            time.sleep(2)
            if self.d.find_elements(By.CSS_SELECTOR, "[data-testid=trigger-dag-button]"):
                return
            assert time.monotonic() < deadline, "recs_nightly never showed in the UI"
            time.sleep(3)

    def open_trigger(self) -> None:
        """The trigger dialog, from the DAG's page (after a trigger the UI moves on, and
        re-renders the button under a waiting click: try again then)."""
        self.open_dag()
        for attempt in range(3):
            try:
                self.find("[data-testid=trigger-dag-button]").click()
                self.xpath("//*[starts-with(text(), 'Trigger Dag')]")
                return
            except StaleElementReferenceException:
                if attempt == 2:
                    raise
                time.sleep(1)

    def set_datetime(self, index: int, day: date) -> None:
        """The ``index``-th date-time field of the dialog: its popover's date and time."""
        fields = [f for f in self.d.find_elements(By.CSS_SELECTOR, "[data-testid=datetime-input]")
                  if f.is_displayed()]
        field = fields[index]
        field.click()
        popover = self.wait.until(lambda d: next(
            (p for p in d.find_elements(By.CSS_SELECTOR,
                                        "[data-scope=popover][data-part=content][data-state=open]")
             if p.is_displayed()), None))
        date_input, time_input = [i for i in popover.find_elements(By.CSS_SELECTOR, "input")
                                  if i.is_displayed()][:2]
        for element, text in ((date_input, f"{day:%Y/%m/%d}"), (time_input, "00:00")):
            element.click()
            element.send_keys(Keys.CONTROL, "a")
            element.send_keys(Keys.BACKSPACE)
            element.send_keys(text)
        self.d.execute_script("arguments[0].click()", field)  # closes the popover
        self.wait.until(lambda d: popover.get_attribute("data-state") != "open")
        assert field.text.startswith(f"{day:%b %d, %Y} 00:00"), field.text

    def trigger_run(self, day: date, top_n: int) -> None:
        self.open_trigger()
        self.set_datetime(0, day)
        field = self.d.find_element(By.NAME, "element_top_n")
        field.click()
        field.send_keys(str(top_n))
        self.shot("trigger")
        self.find("[data-testid=trigger-dag-submit]").click()
        self.wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR,
                                                      "[data-testid=trigger-dag-submit]"))

    def create_backfill(self, first: date, last: date) -> None:
        self.open_trigger()
        self.xpath("//label[contains(., 'Run this Dag for a range of dates')]").click()
        self.xpath("//*[text()='Date Range']")
        self.set_datetime(0, first)
        self.set_datetime(1, last)
        # depends_on_past: Airflow wants a reprocess behavior that reprocesses something.
        self.xpath("//label[contains(., 'Missing and Errored Runs')]").click()
        self.xpath("//*[contains(text(), 'will be triggered')]")
        self.shot("backfill")
        self.xpath("//button[normalize-space()='Run Backfill']").click()
        self.wait.until(lambda d: not d.find_elements(
            By.XPATH, "//button[normalize-space()='Run Backfill']"))


@pytest.fixture
def airflow(tmp_path: Path, movielens_history: Path) -> Iterator[tuple[LocalAirflow, Settings]]:
    root = tmp_path / "ws"
    shutil.copytree(movielens_history, root)
    settings = _settings(root)
    home = tmp_path / "airflow"
    env = {**os.environ,
           "RECS_CONFIG": str(write_config(settings, tmp_path / "recs.toml")),
           "RECS_RAW_ROOT": settings.raw_root, "RECS_LAKE_ROOT": settings.lake_root,
           "RECS_WAREHOUSE": settings.warehouse, "RECS_DEVICE": "cpu",
           # the data ends there: no scheduled run of a day without logs
           "RECS_END_DATE": DAYS[-1].isoformat()}
    port = _free_port()
    af = LocalAirflow(home, port, service_env(home, port, env))
    af.migrate()
    try:
        af.start()
        af.wait_healthy()
        yield af, settings
    finally:
        af.stop()


def _runs(af: LocalAirflow) -> dict[str, dict]:
    return {r["logical_date"][:10]: r
            for r in af.api("dags/recs_nightly/dagRuns?limit=100")["dag_runs"]}


def _wait_for_runs(af: LocalAirflow, days: list[date], timeout: float = 600) -> dict[str, dict]:
    """The runs of ``days`` once all succeeded; fails at the first failed run."""
    deadline = time.monotonic() + timeout
    while True:
        af.check_alive()
        runs = _runs(af)
        states = {d.isoformat(): runs.get(d.isoformat(), {}).get("state") for d in days}
        assert "failed" not in states.values(), f"a run failed: {states}; logs in {af.home}"
        if all(state == "success" for state in states.values()):
            return runs
        assert time.monotonic() < deadline, f"runs not done after {timeout:.0f} s: {states}"
        time.sleep(2)


def test_an_operator_triggers_and_backfills_from_the_ui(airflow, movielens_history: Path,
                                                        tmp_path: Path) -> None:
    af, settings = airflow
    shots = os.environ.get("RECS_UI_SCREENSHOTS")
    driver = _browser()
    try:
        ui = Ui(driver, af.url, Path(shots) if shots else None)
        ui.login(af.password())
        ui.open_dag()
        ui.shot("dag")
        ui.trigger_run(TRIGGERED, TOP_N)
        # A backfill's first day does not wait for an earlier run that is not done (Airflow
        # ignores depends_on_past there; validate would refuse the day): the operator backfills
        # the days after the triggered one once it succeeded.
        _wait_for_runs(af, [TRIGGERED])
        ui.create_backfill(BACKFILLED[0], BACKFILLED[-1])
        runs = _wait_for_runs(af, DAYS)
        driver.get(af.url + "/dags/recs_nightly/runs")
        time.sleep(5)  # the backfill's banner goes once the UI polls again
        ui.shot("runs")
    finally:
        driver.quit()

    assert {d: r["state"] for d, r in runs.items()} == {d.isoformat(): "success" for d in DAYS}
    assert runs[TRIGGERED.isoformat()]["dag_run_id"].startswith("manual__")
    assert all(runs[d.isoformat()]["dag_run_id"].startswith("backfill__") for d in BACKFILLED)

    wh = RunContext(settings, DAYS[-1], "-").warehouse()
    per_user = wh.query("select ds, max(rank) as n, count(distinct user_id) as users "
                        "from recs.recommendations group by ds order by ds").rows()
    assert [(ds, n) for ds, n, _ in per_user] == [
        (TRIGGERED, TOP_N), *((d, settings.serve.top_n) for d in BACKFILLED)]
    assert all(users > 100 for _, _, users in per_user)
    assert wh.query("select distinct ds from recs.recommendations_current")["ds"].to_list() == [
        DAYS[-1]]
    assert wh.query("select run_id, status from recs.pipeline_runs order by ds").rows() == [
        (runs[d.isoformat()]["dag_run_id"], "success") for d in DAYS]

    # The same lists as `recs run` of the same days (the triggered one with its param).
    clean = tmp_path / "clean"
    shutil.copytree(movielens_history, clean)
    for day in DAYS:
        day_settings = _settings(clean)
        if day == TRIGGERED:
            day_settings = replace(day_settings, serve={"top_n": TOP_N})
        run_flow(RunContext(day_settings, day, default_run_id(day)))
    assert _published(settings) == _published(_settings(clean))

    # depends_on_past: each day's validate, embed and publish started after the day before's.
    states = {d: {t["task_id"]: t for t in af.api(
        f"dags/recs_nightly/dagRuns/{quote(runs[d.isoformat()]['dag_run_id'], safe='')}"
        "/taskInstances?limit=100")["task_instances"]} for d in DAYS}
    for before, after in zip(DAYS, DAYS[1:], strict=False):
        for task in ("validate", "embed", "publish"):
            assert states[after][task]["start_date"] >= states[before][task]["end_date"], task

    # The publish task's log carries the run's context and links the report.
    run_id = runs[DAYS[-1].isoformat()]["dag_run_id"]
    log = next((af.home / "logs" / "dag_id=recs_nightly" / f"run_id={run_id}"
                / "task_id=publish").glob("attempt=*.log")).read_text()
    ctx = RunContext(settings, DAYS[-1], run_id)
    assert f"[task=publish ds={DAYS[-1]} run_id={run_id}]" in log
    assert f"run report: {ctx.lake.url(cat.REPORT, ds=ctx.ds)}" in log
