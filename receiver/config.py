"""What the receiver is told by whoever starts it: the values it needs, not where they came
from (the environment is read where processes are wired up, in `workers.settings`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReceiverConfig:
    secrets: list[bytes]
    """Webhook secrets; a delivery signed with any of them is accepted (rotation)."""
    admin_token: str | None
    """`Authorization: Bearer` value for /metrics; None: /metrics is off."""
    max_body_bytes: int
    preauth_bytes: int
    """Bytes of bodies read before their signature is checked, all requests together."""
    body_timeout: float
    store_timeout: float
    metrics_dir: str | None = None
    """Where every process of this deployment's machine keeps its counts for /metrics to add
    up (prometheus-client's multiprocess mode); None: this process counts alone."""
    quiet_after: float | None = None
    """Seconds without a new event after which the alert rules call it too quiet; exported
    as a gauge for them (None: not exported)."""
