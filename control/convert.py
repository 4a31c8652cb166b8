"""Database rows to API messages."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from interview.v1 import resources_pb2 as pb

CANDIDATE_STATUS = {"new": pb.CANDIDATE_STATUS_NEW, "invited": pb.CANDIDATE_STATUS_INVITED,
                    "interviewed": pb.CANDIDATE_STATUS_INTERVIEWED}
SESSION_STATUS = {"ready": pb.SESSION_STATUS_READY, "in_progress": pb.SESSION_STATUS_IN_PROGRESS,
                  "completed": pb.SESSION_STATUS_COMPLETED, "abandoned": pb.SESSION_STATUS_ABANDONED,
                  "ended": pb.SESSION_STATUS_ENDED}
SESSION_STATUS_NAME = {v: k for k, v in SESSION_STATUS.items()}
SPEAKER = {"interviewer": pb.SPEAKER_INTERVIEWER, "candidate": pb.SPEAKER_CANDIDATE}
SPEAKER_NAME = {v: k for k, v in SPEAKER.items()}
OUTBOX_STATUS = {"pending": pb.OUTBOX_STATUS_PENDING, "sending": pb.OUTBOX_STATUS_PENDING,
                 "sent": pb.OUTBOX_STATUS_SENT, "failed": pb.OUTBOX_STATUS_FAILED}


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value)
    return out


def _set_ts(message: Any, field: str, value: dt.datetime | None) -> None:
    if value is not None:
        getattr(message, field).FromDatetime(value)


def tenant(row: Any) -> pb.Tenant:
    out = pb.Tenant(id=str(row["id"]), display_name=row["display_name"])
    _set_ts(out, "create_time", row["created_at"])
    return out


def api_key(row: Any) -> pb.ApiKey:
    out = pb.ApiKey(id=str(row["id"]), tenant_id=str(row["tenant_id"]),
                    display_name=row["display_name"], secret_prefix=row["secret_prefix"])
    _set_ts(out, "create_time", row["created_at"])
    _set_ts(out, "revoke_time", row["revoked_at"])
    return out


def template(row: Any) -> pb.Template:
    out = pb.Template(
        id=str(row["id"]), tenant_id=str(row["tenant_id"]), role=row["role"],
        questions=list(row["questions"]), time_limit_seconds=row["time_limit_seconds"],
        language=row["language"], voice=row["voice"], instructions=row["instructions"],
        version=row["version"])
    _set_ts(out, "create_time", row["created_at"])
    _set_ts(out, "update_time", row["updated_at"])
    return out


def template_snapshot(row: Any) -> str:
    """The template as JSON, pinned on invitations and sessions."""
    return json.dumps({
        "id": str(row["id"]), "tenant_id": str(row["tenant_id"]), "role": row["role"],
        "questions": list(row["questions"]), "time_limit_seconds": row["time_limit_seconds"],
        "language": row["language"], "voice": row["voice"], "instructions": row["instructions"],
        "version": row["version"], "updated_at": row["updated_at"].isoformat(),
    })


def template_from_snapshot(snapshot: str | dict[str, Any]) -> pb.Template:
    data = json.loads(snapshot) if isinstance(snapshot, str) else snapshot
    out = pb.Template(
        id=data["id"], tenant_id=data["tenant_id"], role=data["role"], questions=data["questions"],
        time_limit_seconds=data["time_limit_seconds"], language=data["language"],
        voice=data["voice"], instructions=data["instructions"], version=data["version"])
    _set_ts(out, "update_time", dt.datetime.fromisoformat(data["updated_at"]))
    return out


def candidate(row: Any) -> pb.Candidate:
    out = pb.Candidate(
        id=str(row["candidate_id"]), tenant_id=str(row["tenant_id"]), email=row["email"],
        external_id=row["external_id"] or "", full_name=row["full_name"] or "",
        status=CANDIDATE_STATUS.get(row["status"] or "", pb.CANDIDATE_STATUS_UNSPECIFIED))
    _set_ts(out, "create_time", row["created_at"])
    _set_ts(out, "update_time", row["updated_at"])
    return out


def invitation(row: Any, now: dt.datetime) -> pb.Invitation:
    if row["revoked"] or row["status"] == "revoked":
        status = pb.INVITATION_STATUS_REVOKED
    elif row["status"] == "redeemed":
        status = pb.INVITATION_STATUS_REDEEMED
    elif row["expires_at"] <= now:
        status = pb.INVITATION_STATUS_EXPIRED
    else:
        status = pb.INVITATION_STATUS_PENDING
    out = pb.Invitation(
        id=str(row["id"]), tenant_id=str(row["tenant_id"]), candidate_id=str(row["candidate_id"]),
        template_id=str(row["template_id"]), template=template_from_snapshot(row["template_snapshot"]),
        status=status, uses=row["uses"], max_uses=row["max_uses"],
        email_requested=row["email_requested"],
        session_id=str(row["session_id"]) if row["session_id"] else "")
    _set_ts(out, "expire_time", row["expires_at"])
    _set_ts(out, "create_time", row["created_at"])
    _set_ts(out, "redeem_time", row["redeemed_at"])
    _set_ts(out, "revoke_time", row["revoked_at"])
    return out


def session(row: Any) -> pb.Session:
    out = pb.Session(
        id=str(row["id"]), tenant_id=str(row["tenant_id"]), candidate_id=str(row["candidate_id"]),
        invitation_id=str(row["invitation_id"]), template_id=str(row["template_id"]),
        user_id=str(row["user_id"]) if row["user_id"] else "",
        status=SESSION_STATUS[row["status"]], end_reason=row["end_reason"],
        video_recording_id=row["video_recording_id"] or "",
        video_recording_url=row["video_recording_url"] or "",
        template=template_from_snapshot(row["template_snapshot"]))
    _set_ts(out, "create_time", row["created_at"])
    _set_ts(out, "start_time", row["started_at"])
    _set_ts(out, "end_time", row["ended_at"])
    return out


def transcript_item(row: Any) -> pb.TranscriptItem:
    out = pb.TranscriptItem(
        session_id=str(row["session_id"]), sequence=row["sequence"], speaker=SPEAKER[row["speaker"]],
        text=row["text"], audio_start_ms=row["audio_start_ms"], audio_end_ms=row["audio_end_ms"])
    _set_ts(out, "create_time", row["created_at"])
    return out


def outbox_message(row: Any, text_body: str) -> pb.OutboxMessage:
    out = pb.OutboxMessage(
        id=str(row["id"]), tenant_id=str(row["tenant_id"]),
        invitation_id=str(row["invitation_id"]) if row["invitation_id"] else "",
        to_email=row["to_email"], subject=row["subject"], text_body=text_body,
        status=OUTBOX_STATUS[row["status"]], attempts=row["attempts"], last_error=row["last_error"],
        provider=row["provider"])
    _set_ts(out, "create_time", row["created_at"])
    _set_ts(out, "sent_time", row["sent_at"])
    return out
