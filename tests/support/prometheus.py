"""A real Prometheus server and promtool (the Debian package `prometheus`), and what the tests
read from the repository's monitoring files: the alert rules, their unit tests, the dashboard.

`.ci/run` installs the package when `promtool` is missing; elsewhere, `apt-get install -y
prometheus` (then stop the service it may start, which takes port 9090: the tests start their
own server on a free port).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.payloads import REPO
from tests.support.processes import ADMIN_TOKEN, Process
from tests.support.services import free_port, wait_for

ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "voucherhook.json"
RUNBOOK = REPO / "docs" / "operations.md"

# What Grafana puts in place of its variables before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise AssertionError(
            f"{name} is not installed: `apt-get install -y prometheus` (Debian) installs "
            "prometheus and promtool; .ci/run does it"
        )
    return found


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard's panels, as Grafana sends it."""
    found: list[str] = []
    panels = list(json.loads(DASHBOARD.read_text())["panels"])
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", ()))
        for target in panel.get("targets", ()):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            found.append(expr)
    return found


_NAME = re.compile(r"\bvoucherhook_[a-z0-9_]+\b")


def metric_names(exprs: Iterable[str]) -> set[str]:
    """The voucherhook metric names the expressions read (labels' values aside)."""
    return {name for expr in exprs for name in _NAME.findall(re.sub(r'"[^"]*"', '""', expr))}


def scraped_names(text: str) -> set[str]:
    """The sample names in a Prometheus text exposition."""
    return {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown document."""
    found = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return found


class PrometheusServer(Process):
    """`prometheus` on loopback, on a free port, scraping `targets` (job -> host:port) every
    second with the admin token, and evaluating the repository's alert rules."""

    def __init__(self, targets: dict[str, list[str]]) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="vh-prometheus-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {
                    "job_name": job,
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "authorization": {"type": "Bearer", "credentials": ADMIN_TOKEN},
                    "static_configs": [{"targets": hosts}],
                }
                for job, hosts in targets.items()
            ],
        }
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        checked = promtool("check", "config", str(self.dir / "prometheus.yml"))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        super().__init__(
            [
                tool("prometheus"),
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            env={},
        )
        wait_for(self._ready, 30, what=f"prometheus on port {self.port}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.output()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector `expr` gives now; fails on an invalid expression."""
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = answer.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value `expr` gives now (None: no series)."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return float(result[0]["value"][1]) if result else None

    def wait_for_value(self, expr: str, expected: float, timeout: float = 60) -> None:
        seen: list[float | None] = []

        def reached() -> bool:
            seen.append(self.value(expr))
            return seen[-1] == expected

        try:
            wait_for(reached, timeout, interval=0.5, what=f"{expr} == {expected}")
        except AssertionError:
            raise AssertionError(f"{expr}: expected {expected}, last {seen[-5:]}") from None

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.dir, ignore_errors=True)
