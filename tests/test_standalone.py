"""The repository needs nothing beside it: the recorded payloads the tests read are inside it.
(`.ci/run` proves the rest: it runs the whole suite from a copy with nothing beside it.)"""

from __future__ import annotations

from tests.support.payloads import FIXTURES, REPO


def test_the_recorded_examples_are_in_the_repository() -> None:
    names = {path.name for path in FIXTURES.glob("*.json")}
    assert {
        "redemption.succeeded.json",
        "customer.reward_redemptions.completed.json",
        "post-v1-redemptions.response-example.json",
    } <= names
    assert FIXTURES.is_relative_to(REPO)
    assert (FIXTURES / "README.md").is_file()


def test_the_cli_samples_are_the_recorded_examples() -> None:
    samples = REPO / "workers" / "samples"
    for sample in sorted(samples.glob("*.json")):
        assert sample.read_bytes() == (FIXTURES / sample.name).read_bytes(), sample.name
