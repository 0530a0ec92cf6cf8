"""The repository needs nothing beside it: every file it reads is inside it."""

from __future__ import annotations

import re

from tests.support.checkout import repo_files
from tests.support.payloads import FIXTURES, REPO

# Spelled in pieces so that this file does not match itself.
OUTSIDE = re.compile(
    r"\.\./" + "shared"
    r"|" + "shared" + r"/voucherify"
    r"""|["']""" + "shared" + r"""["']\s*[/,]\s*["']voucherify""",
)


def test_no_file_reads_a_folder_beside_the_repository() -> None:
    offending = []
    for name in repo_files():
        data = (REPO / name).read_bytes()
        if b"\0" in data:
            continue  # binary
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if OUTSIDE.search(line):
                offending.append(f"{name}:{number}: {line.strip()}")
    assert not offending, "files that reach outside the repository:\n" + "\n".join(offending)


def test_the_pattern_catches_each_way_of_writing_the_path() -> None:
    folder = "shared"
    for line in (
        f'PAYLOAD = Path("/work/{folder}/voucherify/redemption.succeeded.json")',
        f'VOUCHERIFY = (REPO / ".." / "{folder}" / "voucherify").resolve()',
        f'EXAMPLES = REPO.parent / "{folder}" / "voucherify"',
        f"os.path.join(root, '{folder}', 'voucherify')",
        f"see ../{folder}/docs",
    ):
        assert OUTSIDE.search(line), line
    assert not OUTSIDE.search("reward redemptions on shared loyalty cards")


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
