"""How the admin commands show resources: short lines and tables for people, JSON for scripts."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from interview.v1 import resources_pb2


def to_json(message: Message) -> dict[str, Any]:
    """The proto3 JSON mapping (camelCase), every field present, enums by name."""
    return MessageToDict(message, always_print_fields_with_no_presence=True)


def dump_json(value: object, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def when(ts: Timestamp) -> str:
    """Local time, to the second; "-" for an unset timestamp."""
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=dt.UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def clock(ts: Timestamp) -> str:
    return ts.ToDatetime(tzinfo=dt.UTC).astimezone().strftime("%H:%M:%S")


def now_clock() -> str:
    return dt.datetime.now().strftime("%H:%M:%S")


def offset(ms: int) -> str:
    """A position in the interview's audio: m:ss.t"""
    minutes, rest = divmod(max(0, ms), 60_000)
    return f"{minutes}:{rest / 1000:04.1f}"


def duration(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes} min" if not secs else (f"{minutes}m{secs:02d}s" if minutes else f"{secs} s")


def enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        name: str = enum.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(prefix).lower()


def session_status(value: int) -> str:
    return enum_name(resources_pb2.SessionStatus, value, "SESSION_STATUS_")


def outbox_status(value: int) -> str:
    return enum_name(resources_pb2.OutboxStatus, value, "OUTBOX_STATUS_")


def candidate_status(value: int) -> str:
    return enum_name(resources_pb2.CandidateStatus, value, "CANDIDATE_STATUS_")


def invitation_status(value: int) -> str:
    return enum_name(resources_pb2.InvitationStatus, value, "INVITATION_STATUS_")


def speaker(value: int) -> str:
    return enum_name(resources_pb2.Speaker, value, "SPEAKER_")


def table(rows: Sequence[Sequence[str]], headers: Sequence[str], out: TextIO, *, empty: str) -> None:
    if not rows:
        out.write(empty + "\n")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    for row in (headers, *rows):
        out.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n")


def fields(pairs: Sequence[tuple[str, str]], out: TextIO) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        out.write(f"  {key.ljust(width)}  {value}\n")


def template(t: resources_pb2.Template, out: TextIO) -> None:
    out.write(f"template {t.id} (version {t.version})\n")
    fields([("role", t.role), ("time limit", duration(t.time_limit_seconds)), ("language", t.language),
            ("voice", t.voice), ("tenant", t.tenant_id), ("created", when(t.create_time)),
            ("updated", when(t.update_time))], out)
    out.write("  questions\n")
    for i, q in enumerate(t.questions, 1):
        out.write(f"    {i}. {q}\n")
    if t.instructions:
        out.write("  instructions\n")
        for line in t.instructions.splitlines():
            out.write(f"    {line}\n")


def session(s: resources_pb2.Session, out: TextIO) -> None:
    out.write(f"session {s.id}\n")
    ended = f" ({s.end_reason})" if s.end_reason else ""
    pairs = [("status", session_status(s.status) + ended), ("candidate", s.candidate_id),
             ("template", f"{s.template_id} ({s.template.role}, {len(s.template.questions)} questions, "
                          f"{duration(s.template.time_limit_seconds)})"),
             ("invitation", s.invitation_id), ("tenant", s.tenant_id), ("created", when(s.create_time)),
             ("started", when(s.start_time)), ("ended", when(s.end_time))]
    if s.video_recording_id or s.video_recording_url:
        pairs.append(("recording", s.video_recording_url or s.video_recording_id))
    fields(pairs, out)


def transcript_line(item: resources_pb2.TranscriptItem) -> str:
    """One turn: its place in the interview's audio, who spoke, what was said."""
    text = item.text
    if not text and item.speaker == resources_pb2.SPEAKER_CANDIDATE:
        seconds = (item.audio_end_ms - item.audio_start_ms) / 1000
        text = f"({seconds:.1f} s of speech, not transcribed)"
    who = speaker(item.speaker)
    return f"#{item.sequence:<3} {offset(item.audio_start_ms)}-{offset(item.audio_end_ms)}  {who:<11}  {text}"
