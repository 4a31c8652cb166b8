"""What every servicer shares: settings, the database, the gate, and helpers built once."""

from __future__ import annotations

from dataclasses import dataclass

from control.db import Database
from control.grpc_boundary import Gate
from control.idempotency import Idempotency
from control.validation import Validator
from control.watch import SessionEvents
from interview_core.config import Settings
from interview_core.credentials import SecretBox


@dataclass(frozen=True)
class ControlContext:
    settings: Settings
    db: Database
    gate: Gate
    validator: Validator
    idempotency: Idempotency
    box: SecretBox
    session_events: SessionEvents
