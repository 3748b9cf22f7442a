"""``recs airflow`` (``make airflow``): a local Airflow with this DAG, on 127.0.0.1.

It starts Airflow's four services (api-server with the UI, scheduler, dag-processor,
triggerer) on SQLite metadata under one AIRFLOW_HOME, with the demo data validated up to its
last nights (so a run or backfill of those days has its history), the ``gpu`` pool, and
``RECS_END_DATE`` at the data's last day (no scheduled run of a day that has no data). The
login of the UI is printed. Ctrl-C stops the services and exits cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from jobs.console import console

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
SERVICES = (("api-server",), ("scheduler",), ("dag-processor",), ("triggerer",))
USER = "admin"


def service_env(home: Path, port: int, base: dict[str, str]) -> dict[str, str]:
    """The environment of a local Airflow: SQLite metadata and the LocalExecutor under
    ``home``, the API and UI on 127.0.0.1:``port``, examples off, one ``admin`` user."""
    from jobs.tools.demo import REPO

    return {
        **base,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
    }


@dataclass
class LocalAirflow:
    home: Path
    port: int
    env: dict[str, str]
    services: list[subprocess.Popen] = field(default_factory=list)
    _token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True,
                             timeout=timeout)
        if out.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{out.stderr[-3000:]}")
        return out.stdout

    def api(self, path: str) -> dict:
        """GET ``/api/v2/<path>`` of the running API server, as the UI's ``admin`` user (the
        REST API answers in milliseconds where each ``airflow`` CLI call starts Airflow)."""
        if self._token is None:
            request = urllib.request.Request(
                f"{self.url}/auth/token", method="POST",
                data=json.dumps({"username": USER, "password": self.password()}).encode(),
                headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=30) as response:
                self._token = json.load(response)["access_token"]
        request = urllib.request.Request(f"{self.url}/api/v2/{path}",
                                         headers={"Authorization": f"Bearer {self._token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def migrate(self) -> None:
        """The metadata database and the ``gpu`` pool (embed, train and precompute take a
        slot: one per GPU)."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.cli("db", "migrate")
        self.cli("pools", "set", "gpu", "1", "one slot per GPU")

    def start(self) -> None:
        """The four services, each in its own process group, logging to ``home/<name>.log``."""
        for command in SERVICES:
            log = (self.home / f"{command[0]}.log").open("w")
            self.services.append(subprocess.Popen(
                [AIRFLOW, *command], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))

    def check_alive(self) -> None:
        for proc in self.services:
            if proc.poll() is not None:
                log = self.home / f"{proc.args[1]}.log"
                raise RuntimeError(f"airflow {proc.args[1]} exited ({proc.returncode}); "
                                   f"its log: {log}\n{log.read_text()[-2000:]}")

    def wait_healthy(self, timeout: float = 300) -> None:
        """Until the API answers and the scheduler and dag-processor report healthy."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            # Not answering yet (or not JSON yet) is the usual state while the API starts.
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health",
                                            timeout=5) as response:
                    health = json.load(response)
                if all(health.get(part, {}).get("status") == "healthy"
                       for part in ("metadatabase", "scheduler", "dag_processor")):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Airflow at {self.url} not healthy after {timeout:.0f} s; "
                                   f"service logs in {self.home}")
            time.sleep(2)

    def password(self) -> str:
        """The generated password of the UI's ``admin`` user (the api-server writes it)."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text())[USER]

    def stop(self) -> None:
        """SIGTERM to every service's process group, SIGKILL to any left after 30 s."""
        for proc in self.services:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.services:
            try:
                proc.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.services.clear()


def run_local_airflow(workdir: Path, home: Path, port: int = 8080, nights: int = 3) -> int:
    from jobs.tools.demo import LAST_DAY, airflow_env, prepare_demo

    workdir, home = workdir.resolve(), home.resolve()
    settings, open_nights = prepare_demo(workdir, nights)
    # The data ends there: no scheduled run of a day without logs.
    env = {**airflow_env(settings), "RECS_END_DATE": LAST_DAY.isoformat()}
    airflow = LocalAirflow(home, port, service_env(home, port, env))
    console.info(f"airflow: metadata under {home}")
    airflow.migrate()
    stop = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    previous = signal.signal(signal.SIGINT, _stop), signal.signal(signal.SIGTERM, _stop)
    try:
        airflow.start()
        airflow.wait_healthy()
        console.info("\n".join([
            f"Airflow is up: {airflow.url}  (login: {USER} / {airflow.password()})",
            f"  DAG recs_nightly, demo data under {workdir} (validated up to the day before "
            f"{open_nights[0]}, last day {LAST_DAY}).",
            f"  Trigger a run of {open_nights[0]} .. {LAST_DAY}, or a backfill over them: "
            "README, \"The Airflow UI\".",
            f"  Service logs: {home}/*.log.  Ctrl-C stops Airflow."]))
        while not stop:
            airflow.check_alive()
            time.sleep(1)
    finally:
        console.info("stopping Airflow ...")
        airflow.stop()
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    console.info("Airflow stopped")
    return 0
