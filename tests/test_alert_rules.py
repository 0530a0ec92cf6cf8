"""The shipped alert rules (deploy/prometheus/alerts.yml) load in Prometheus, each fires when
it should and stays quiet when it should not (the unit tests beside them, run by promtool),
and each points at the section of the runbook that says what to do.

That the metrics they read exist in a real scrape: tests/test_prometheus.py.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.prometheus import ALERT_TESTS, ALERTS, RUNBOOK, alert_rules, anchors, promtool


def test_the_rules_are_valid() -> None:
    checked = promtool("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in checked.stdout


def test_every_alert_passes_its_unit_tests() -> None:
    tested = promtool("test", "rules", str(ALERT_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a case where it fires and one where it must not (the promtool tests
    above check both: an `exp_alerts: []` fails when the alert fires)."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(ALERT_TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", ()):
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fires == set(), "alerts never seen firing"
    assert names - quiet == set(), "alerts never seen quiet"
    assert (fires | quiet) <= names, "tests of alerts that do not exist"


def test_a_broken_rule_fails_its_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: the same tests against rules whose backlog threshold is off
    by far report the alert that no longer fires."""
    work = tmp_path
    rules = ALERTS.read_text().replace(
        "max without (instance) (voucherhook_backlog_events) > 10",
        "max without (instance) (voucherhook_backlog_events) > 100000",
    )
    assert rules != ALERTS.read_text()
    (work / "alerts.yml").write_text(rules)
    (work / "alerts_test.yml").write_text(ALERT_TESTS.read_text())
    tested = promtool("test", "rules", str(work / "alerts_test.yml"))
    assert tested.returncode != 0
    assert "VoucherhookBacklogGrowing" in tested.stdout + tested.stderr


def test_every_alert_links_to_a_section_of_the_runbook() -> None:
    sections = anchors(RUNBOOK.read_text())
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/operations.md", (rule["alert"], url)
        assert anchor in sections, f"{rule['alert']}: no section #{anchor} in {RUNBOOK.name}"
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
