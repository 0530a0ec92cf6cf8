"""What a notification says and to whom (models/notifications.py): one plain address or no
email, Slack-escaped payload text in the operations webhook, and never the webhook's URL."""

from __future__ import annotations

import pytest

from models.notifications import (
    NOT_ONE_ADDRESS,
    WEBHOOK_RECIPIENT,
    email_address,
    email_refused,
    messages,
    plain_address,
    slack_escape,
)
from models.voucherify import parse_payload
from tests.unit.recorded import (
    REDEMPTION,
    REWARD_REDEMPTION,
    Json,
    seed_redemption,
    seed_reward_redemption,
)
from workers.templates import environment

ENV = environment(None)


def rendered(event_type: str, data: Json) -> dict[str, tuple[str, str, str]]:
    """channel -> (recipient, subject, body) of the messages of one event."""
    found = messages(
        ENV, event_type, parse_payload(event_type, data), currency="USD", email=True, webhook=True
    )
    return {m.channel: (m.recipient, m.subject, m.body) for m in found}


@pytest.mark.parametrize(
    "text", ["jane@jane.io", "  jane@jane.io ", "o'brien+tag@mail.example.co.uk", "ü@exämple.de"]
)
def test_one_plain_address_is_used(text: str) -> None:
    assert plain_address(text) == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "a@x.io, b@y.io",
        "a@x.io,b@y.io",
        "a@x.io; b@y.io",
        "a@x.io\nb@y.io",
        "a@x.io\r\nBcc: b@y.io",
        "a@x.io\tb@y.io",
        "a@x.io b@y.io",
        "Name <a@x.io>",
        "<a@x.io>",
        "a@x.io <b@y.io>",
        "a@x.io (b@y.io)",
        '"b@y.io" a@x.io',
        '"a,b"@x.io',
        "a@b@x.io",
        "@x.io",
        "a@",
        "a",
        "",
        "a@x..io",
        "a@.x.io",
        "a@[127.0.0.1]",
        "undisclosed:a@x.io,b@y.io;",
    ],
)
def test_anything_but_one_plain_address_is_refused(text: str) -> None:
    assert plain_address(text) is None


@pytest.mark.parametrize("email", ["a@x.io, b@y.io", "a@x.io\nb@y.io", "Eve <a@x.io>"])
def test_a_customer_whose_email_is_not_one_address_is_not_emailed_and_the_reason_says_so(
    email: str,
) -> None:
    data = seed_redemption()
    data["customer"]["email"] = email
    payload = parse_payload(REDEMPTION, data)
    assert email_address(payload) is None
    assert email_refused(payload) == NOT_ONE_ADDRESS
    assert "a@x.io" not in NOT_ONE_ADDRESS
    assert set(rendered(REDEMPTION, data)) == {"webhook"}


def test_a_customer_with_one_address_is_emailed_and_nothing_is_refused() -> None:
    payload = parse_payload(REDEMPTION, seed_redemption())
    assert email_address(payload) == "jane@jane.io"
    assert email_refused(payload) is None
    assert email_refused(parse_payload(REWARD_REDEMPTION, seed_reward_redemption())) is None


def test_the_webhook_names_the_setting_never_a_url() -> None:
    recipient = rendered(REDEMPTION, seed_redemption())["webhook"][0]
    assert recipient == WEBHOOK_RECIPIENT == "NOTIFY_WEBHOOK_URL"


def test_slack_escape_escapes_ampersand_first_then_angle_brackets() -> None:
    assert (
        slack_escape("<!channel> & <@U123> &lt;") == "&lt;!channel&gt; &amp; &lt;@U123&gt; &amp;lt;"
    )


def test_a_customer_named_like_a_mention_is_shown_not_mentioned_in_the_webhook() -> None:
    data = seed_reward_redemption()
    for person in ("customer", "holder"):
        data[person]["name"] = "<!channel>"
    data["reward"]["name"] = "<http://evil.example|click> & <@U123>"
    text = rendered(REWARD_REDEMPTION, data)["webhook"][2]
    assert "&lt;!channel&gt;" in text
    assert "&lt;http://evil.example|click&gt; &amp; &lt;@U123&gt;" in text
    assert "<" not in text and ">" not in text


def test_campaign_and_code_text_is_escaped_in_the_webhook_and_kept_in_the_email() -> None:
    data = seed_redemption()
    data["campaign"]["name"] = "<!here> Spring"
    data["voucher"]["code"] = "A&B<@U1>"
    found = rendered(REDEMPTION, data)
    webhook = found["webhook"][2]
    assert "of A&amp;B&lt;@U1&gt; (&lt;!here&gt; Spring)" in webhook
    assert "<" not in webhook and ">" not in webhook
    # The email is plain text to the customer: shown as it is.
    assert "A&B<@U1>" in found["email"][2] and "<!here> Spring" in found["email"][2]
