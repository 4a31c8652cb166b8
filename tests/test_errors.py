"""Platform errors keep their stable code across process boundaries (Ray pickles them)."""

from __future__ import annotations

import pickle

from interview_core.errors import ErrorCode, PlatformError


def test_platform_errors_survive_pickling() -> None:
    error = pickle.loads(pickle.dumps(PlatformError(ErrorCode.INVALID_STATE, "over", field="session")))
    assert (error.code, error.message, error.field) == (ErrorCode.INVALID_STATE, "over", "session")
    assert not error.retryable
