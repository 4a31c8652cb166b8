"""The candidate WebSocket protocol: the OpenAI Realtime API's GA events a candidate needs, plus ours.

One typed, frozen record per event type and one decode/encode pair:

- `decode_client_event(data, max_bytes=...)` turns one WebSocket text message from a candidate into a
  `ClientEvent` record, or raises `ProtocolError`: the one error this module raises for bad input.
- `encode_server_event(event)` turns a `ServerEvent` record into the JSON text to send. Every
  OpenAI event carries exactly the fields its `RealtimeServerEvent*` schema in
  `specs/openai-openapi.yaml` requires (plus the optional ones worth sending); our own events are
  namespaced `interview.*` and described by `INTERVIEW_EVENT_SCHEMAS`.

`ProtocolError.code` is stable (`ProtocolErrorCode`); the edge answers a bad client event with
`encode_server_event(error_event(exc))`, an OpenAI `error` event whose `error.event_id` is the
offending client event's `event_id` when it could be read, and keeps the connection open.

The server, not the candidate, decides instructions, voice, tools, model, output modalities and
transcription. A candidate's `session.update` may change only what `SessionUpdate` holds (input
noise reduction, server-VAD / semantic-VAD tuning within bounds, the interviewer's speaking speed)
and may restate the one audio format we speak (PCM16, 24 kHz, mono); anything else is answered with
`forbidden_session_field`. `apply_session_update` merges an accepted update into the session.

The session we send in `session.created` / `session.updated` leaves out `instructions`, `tools`
and `tool_choice` on purpose: they hold the interview plan, which a candidate must not read.

Hot path: an `input_audio_buffer.append` decodes with one JSON parse and one strict base64 decode
(no validation framework); `response.output_audio.delta` encodes by string concatenation.
"""

from __future__ import annotations

import binascii
import enum
import itertools
import json
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Final, Literal, TypeAlias, cast, get_args

__all__ = [
    "AUDIO_CHANNELS",
    "AUDIO_SAMPLE_RATE",
    "AUDIO_SAMPLE_WIDTH",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "INTERVIEW_EVENT_SCHEMAS",
    "OUTPUT_SPEED_RANGE",
    "PREFIX_PADDING_MS_RANGE",
    "SILENCE_DURATION_MS_RANGE",
    "VAD_THRESHOLD_RANGE",
    "ClientEvent",
    "ConversationItemTruncate",
    "ConversationItemTruncated",
    "Eagerness",
    "ErrorEvent",
    "InputAudioBufferAppend",
    "InputAudioBufferClear",
    "InputAudioBufferCleared",
    "InputAudioBufferCommit",
    "InputAudioBufferCommitted",
    "InputAudioBufferSpeechStarted",
    "InputAudioBufferSpeechStopped",
    "InputAudioTranscriptionCompleted",
    "InterviewEndReason",
    "InterviewEnded",
    "InterviewPing",
    "InterviewPong",
    "InterviewProgress",
    "NoiseReductionType",
    "ProtocolError",
    "ProtocolErrorCode",
    "ResponseCancel",
    "ResponseCreated",
    "ResponseDone",
    "ResponseOutputAudioDelta",
    "ResponseOutputAudioDone",
    "ResponseOutputAudioTranscriptDelta",
    "ResponseOutputAudioTranscriptDone",
    "ResponseStatus",
    "ResponseStatusReason",
    "SemanticVad",
    "ServerEvent",
    "ServerVad",
    "SessionConfig",
    "SessionCreated",
    "SessionUpdate",
    "SessionUpdated",
    "apply_session_update",
    "decode_client_event",
    "encode_server_event",
    "error_event",
    "new_id",
]

# The one audio format on the wire, both directions: PCM16 little-endian, 24 kHz, mono.
AUDIO_SAMPLE_RATE: Final = 24_000
AUDIO_SAMPLE_WIDTH: Final = 2
AUDIO_CHANNELS: Final = 1

# A sensible `max_bytes` for the edge: about 2.7 s of audio in one append event. Streaming clients
# send 20 to 100 ms per event; the limit bounds what one message can make the edge hold.
DEFAULT_MAX_MESSAGE_BYTES: Final = 256 * 1024

# What a candidate may set through session.update (inclusive bounds). Outside them turn-taking
# breaks: a very short silence cuts candidates off mid-thought, a very long one stalls the
# interview; a VAD threshold near 0 or 1 hears speech always or never.
SILENCE_DURATION_MS_RANGE: Final = (200, 3000)
PREFIX_PADDING_MS_RANGE: Final = (0, 1000)
VAD_THRESHOLD_RANGE: Final = (0.1, 0.9)
OUTPUT_SPEED_RANGE: Final = (0.25, 1.5)  # the schema's own bounds for audio.output.speed

_EVENT_ID_MAX_LENGTH: Final = 512  # RealtimeClientEvent*.event_id maxLength
_PING_ID_MAX_LENGTH: Final = 128
_MAX_INDEX: Final = 2**31 - 1

NoiseReductionType: TypeAlias = Literal["near_field", "far_field"]
Eagerness: TypeAlias = Literal["low", "medium", "high", "auto"]
ResponseStatus: TypeAlias = Literal["completed", "cancelled", "failed", "incomplete"]
ResponseStatusReason: TypeAlias = Literal["turn_detected", "client_cancelled", "max_output_tokens", "content_filter"]
InterviewEndReason: TypeAlias = Literal[
    "completed",  # every question asked and answered
    "time_limit",  # the interview's time ran out
    "ended_by_candidate",
    "ended_by_tenant",  # the tenant (or an operator) ended it
    "abandoned",  # the candidate went away and did not come back in time
    "failed",  # the platform could not carry on
]


# --------------------------------------------------------------------------------------------
# Ids


_ID_PREFIX: Final = secrets.token_hex(5)  # per process, so ids from two edges never collide
_id_counter = itertools.count(1)


def new_id(prefix: str = "event") -> str:
    """A short id unique across processes: `<prefix>_<10 random hex><counter in hex>`.

    Used for server event ids ("event"); the actor can use it for "item", "resp", "conv" too.
    """
    return f"{prefix}_{_ID_PREFIX}{next(_id_counter):x}"


def _new_event_id() -> str:
    return f"event_{_ID_PREFIX}{next(_id_counter):x}"


# --------------------------------------------------------------------------------------------
# The error


class ProtocolErrorCode(enum.StrEnum):
    """Stable codes of `ProtocolError`, sent as `error.code` of the `error` event. Never rename one.

    `invalid_event`, `invalid_value` and `missing_required_parameter` are the codes OpenAI's
    Realtime API itself uses for the same faults; the others are ours.
    """

    INVALID_JSON = "invalid_json"  # not UTF-8 or not JSON
    INVALID_EVENT = "invalid_event"  # JSON, but not an object with a string `type`
    UNKNOWN_EVENT = "unknown_event"  # a `type` we do not accept from a candidate
    MISSING_REQUIRED_PARAMETER = "missing_required_parameter"
    INVALID_VALUE = "invalid_value"  # a field of the wrong JSON type or out of range
    INVALID_AUDIO = "invalid_audio"  # not strict base64, or not whole 16-bit samples
    MESSAGE_TOO_LARGE = "message_too_large"
    FORBIDDEN_SESSION_FIELD = "forbidden_session_field"  # session.update touched a server-decided field


class ProtocolError(ValueError):
    """A client event we cannot accept. The one error `decode_client_event` raises for bad input.

    `code` is stable; `message` is safe to show the candidate; `param` names the offending field
    (dotted, as OpenAI does: "session.instructions"); `event_id` is the client event's own
    `event_id` when it could be read (never for invalid_json or message_too_large).
    """

    def __init__(
        self, code: ProtocolErrorCode, message: str, *, param: str | None = None, event_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id

    def __reduce__(self) -> tuple[Any, ...]:  # picklable (Ray carries exceptions between processes)
        return (type(self), (self.code, self.message), {"param": self.param, "event_id": self.event_id})

    def __repr__(self) -> str:
        return f"ProtocolError({self.code.value}, {self.message!r}, param={self.param!r}, event_id={self.event_id!r})"


# --------------------------------------------------------------------------------------------
# Client events (candidate -> edge)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferAppend:
    """`input_audio_buffer.append`; `audio` is the decoded PCM16 (whole samples, maybe empty)."""

    TYPE: ClassVar[str] = "input_audio_buffer.append"
    audio: bytes
    event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferCommit:
    TYPE: ClassVar[str] = "input_audio_buffer.commit"
    event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferClear:
    TYPE: ClassVar[str] = "input_audio_buffer.clear"
    event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseCancel:
    """`response.cancel`; `response_id` None means the response in progress."""

    TYPE: ClassVar[str] = "response.cancel"
    response_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationItemTruncate:
    """`conversation.item.truncate`: the candidate heard only `audio_end_ms` of an assistant item."""

    TYPE: ClassVar[str] = "conversation.item.truncate"
    item_id: str
    content_index: int
    audio_end_ms: int
    event_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdate:
    """The part of a `session.update` a candidate may make. `None` everywhere means "unchanged".

    - `noise_reduction`: "near_field" (headset), "far_field" (laptop microphone) or "off" (null).
    - `turn_detection_type`: the type the update's `turn_detection` named; it only says which
      tuning fields apply, it never switches the session's VAD (see `apply_session_update`).
    - `silence_duration_ms`, `prefix_padding_ms`, `vad_threshold`: server VAD tuning, in bounds.
    - `eagerness`: semantic VAD tuning.
    - `output_speed`: the interviewer's speaking speed.
    """

    TYPE: ClassVar[str] = "session.update"
    event_id: str | None = None
    noise_reduction: NoiseReductionType | Literal["off"] | None = None
    turn_detection_type: Literal["server_vad", "semantic_vad"] | None = None
    silence_duration_ms: int | None = None
    prefix_padding_ms: int | None = None
    vad_threshold: float | None = None
    eagerness: Eagerness | None = None
    output_speed: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InterviewPing:
    """`interview.ping` (ours): echoed through the actor as `interview.pong` to time the frame path."""

    TYPE: ClassVar[str] = "interview.ping"
    client_time_ms: float
    ping_id: str | None = None
    event_id: str | None = None


ClientEvent: TypeAlias = (
    InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ResponseCancel
    | ConversationItemTruncate
    | SessionUpdate
    | InterviewPing
)


# --------------------------------------------------------------------------------------------
# Session configuration (what session.created / session.updated show)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerVad:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    idle_timeout_ms: int | None = None  # the schema allows null or 5000..30000
    create_response: bool = True
    interrupt_response: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class SemanticVad:
    eagerness: Eagerness = "auto"
    create_response: bool = True
    interrupt_response: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionConfig:
    """The session as a candidate may see it. Instructions and tools are never part of it."""

    id: str
    model: str
    voice: str
    expires_at: int | None = None  # unix seconds
    output_speed: float = 1.0
    turn_detection: ServerVad | SemanticVad | None = ServerVad()
    noise_reduction: NoiseReductionType | None = None
    transcription_model: str | None = None  # None: input transcription off
    transcription_language: str | None = None


def apply_session_update(current: SessionConfig, update: SessionUpdate) -> SessionConfig:
    """`current` with an accepted candidate update applied. Raises `ProtocolError` (invalid_value)
    when the update tunes a VAD type the session does not use: a candidate never switches it."""
    changes: dict[str, Any] = {}
    if update.noise_reduction is not None:
        changes["noise_reduction"] = None if update.noise_reduction == "off" else update.noise_reduction
    if update.output_speed is not None:
        changes["output_speed"] = update.output_speed
    if update.turn_detection_type is not None:
        td = current.turn_detection
        if update.turn_detection_type == "server_vad" and isinstance(td, ServerVad):
            vad_changes: dict[str, Any] = {}
            if update.silence_duration_ms is not None:
                vad_changes["silence_duration_ms"] = update.silence_duration_ms
            if update.prefix_padding_ms is not None:
                vad_changes["prefix_padding_ms"] = update.prefix_padding_ms
            if update.vad_threshold is not None:
                vad_changes["threshold"] = update.vad_threshold
            changes["turn_detection"] = replace(td, **vad_changes)
        elif update.turn_detection_type == "semantic_vad" and isinstance(td, SemanticVad):
            changes["turn_detection"] = td if update.eagerness is None else replace(td, eagerness=update.eagerness)
        else:
            in_use = "no turn detection" if td is None else type(td).__name__
            raise ProtocolError(
                ProtocolErrorCode.INVALID_VALUE,
                f"This interview uses {in_use}; a candidate cannot switch turn detection to "
                f"{update.turn_detection_type}.",
                param="session.audio.input.turn_detection.type",
                event_id=update.event_id,
            )
    return replace(current, **changes) if changes else current


# --------------------------------------------------------------------------------------------
# Server events (edge -> candidate)

_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
_q = json.encoder.encode_basestring_ascii  # a JSON string literal, quotes included (C speedup)
_PCM_FORMAT: Final[Mapping[str, Any]] = {"type": "audio/pcm", "rate": AUDIO_SAMPLE_RATE}


def _session_json(s: SessionConfig) -> dict[str, Any]:
    audio_in: dict[str, Any] = {"format": dict(_PCM_FORMAT)}
    # The schema types transcription and noise_reduction as objects (not nullable): "off" is
    # said by leaving them out, which the SDK reads as None too.
    if s.transcription_model is not None:
        tr: dict[str, Any] = {"model": s.transcription_model}
        if s.transcription_language is not None:
            tr["language"] = s.transcription_language
        audio_in["transcription"] = tr
    if s.noise_reduction is not None:
        audio_in["noise_reduction"] = {"type": s.noise_reduction}
    td = s.turn_detection
    if isinstance(td, ServerVad):
        audio_in["turn_detection"] = {
            "type": "server_vad",
            "threshold": td.threshold,
            "prefix_padding_ms": td.prefix_padding_ms,
            "silence_duration_ms": td.silence_duration_ms,
            "idle_timeout_ms": td.idle_timeout_ms,
            "create_response": td.create_response,
            "interrupt_response": td.interrupt_response,
        }
    elif isinstance(td, SemanticVad):
        audio_in["turn_detection"] = {
            "type": "semantic_vad",
            "eagerness": td.eagerness,
            "create_response": td.create_response,
            "interrupt_response": td.interrupt_response,
        }
    else:
        audio_in["turn_detection"] = None
    out: dict[str, Any] = {
        "type": "realtime",
        "object": "realtime.session",
        "id": s.id,
        "model": s.model,
        "output_modalities": ["audio"],
    }
    if s.expires_at is not None:
        out["expires_at"] = s.expires_at
    out["audio"] = {
        "input": audio_in,
        "output": {"format": dict(_PCM_FORMAT), "voice": s.voice, "speed": s.output_speed},
    }
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCreated:
    TYPE: ClassVar[str] = "session.created"
    session: SessionConfig
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps({"type": self.TYPE, "event_id": self.event_id, "session": _session_json(self.session)})


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdated:
    TYPE: ClassVar[str] = "session.updated"
    session: SessionConfig
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps({"type": self.TYPE, "event_id": self.event_id, "session": _session_json(self.session)})


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferSpeechStarted:
    TYPE: ClassVar[str] = "input_audio_buffer.speech_started"
    audio_start_ms: int
    item_id: str
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "audio_start_ms": self.audio_start_ms,
                "item_id": self.item_id,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferSpeechStopped:
    TYPE: ClassVar[str] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int
    item_id: str
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {"type": self.TYPE, "event_id": self.event_id, "audio_end_ms": self.audio_end_ms, "item_id": self.item_id}
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferCommitted:
    TYPE: ClassVar[str] = "input_audio_buffer.committed"
    item_id: str
    previous_item_id: str | None = None
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "previous_item_id": self.previous_item_id,
                "item_id": self.item_id,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioBufferCleared:
    TYPE: ClassVar[str] = "input_audio_buffer.cleared"
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps({"type": self.TYPE, "event_id": self.event_id})


@dataclass(frozen=True, slots=True, kw_only=True)
class InputAudioTranscriptionCompleted:
    """`conversation.item.input_audio_transcription.completed`: what the candidate said.

    The schema requires `usage`; we report the transcribed audio's duration (`audio_seconds`).
    """

    TYPE: ClassVar[str] = "conversation.item.input_audio_transcription.completed"
    item_id: str
    transcript: str
    audio_seconds: float
    content_index: int = 0
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "item_id": self.item_id,
                "content_index": self.content_index,
                "transcript": self.transcript,
                "usage": {"type": "duration", "seconds": self.audio_seconds},
            }
        )


def _response_json(
    response_id: str,
    status: str,
    conversation_id: str | None,
    status_details: dict[str, Any] | None = None,
    output: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    # RealtimeResponse requires no field; we send what a client needs to follow the response.
    # status_details is typed object (not nullable) in the schema: left out rather than null.
    r: dict[str, Any] = {"object": "realtime.response", "id": response_id, "status": status}
    if status_details is not None:
        r["status_details"] = status_details
    r["output"] = output if output is not None else []
    if conversation_id is not None:
        r["conversation_id"] = conversation_id
    r["output_modalities"] = ["audio"]
    return r


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseCreated:
    TYPE: ClassVar[str] = "response.created"
    response_id: str
    conversation_id: str | None = None
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "response": _response_json(self.response_id, "in_progress", self.conversation_id),
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseOutputAudioDelta:
    """`response.output_audio.delta`; `audio` is PCM16, base64-encoded into `delta` on the wire."""

    TYPE: ClassVar[str] = "response.output_audio.delta"
    response_id: str
    item_id: str
    audio: bytes
    output_index: int = 0
    content_index: int = 0
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        # The hot path: plain concatenation; base64 never needs JSON escaping.
        return (
            '{"type":"response.output_audio.delta","event_id":'
            + _q(self.event_id)
            + ',"response_id":'
            + _q(self.response_id)
            + ',"item_id":'
            + _q(self.item_id)
            + ',"output_index":'
            + str(int(self.output_index))
            + ',"content_index":'
            + str(int(self.content_index))
            + ',"delta":"'
            + binascii.b2a_base64(self.audio, newline=False).decode("ascii")
            + '"}'
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseOutputAudioDone:
    TYPE: ClassVar[str] = "response.output_audio.done"
    response_id: str
    item_id: str
    output_index: int = 0
    content_index: int = 0
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "response_id": self.response_id,
                "item_id": self.item_id,
                "output_index": self.output_index,
                "content_index": self.content_index,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseOutputAudioTranscriptDelta:
    TYPE: ClassVar[str] = "response.output_audio_transcript.delta"
    response_id: str
    item_id: str
    delta: str
    output_index: int = 0
    content_index: int = 0
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "response_id": self.response_id,
                "item_id": self.item_id,
                "output_index": self.output_index,
                "content_index": self.content_index,
                "delta": self.delta,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseOutputAudioTranscriptDone:
    TYPE: ClassVar[str] = "response.output_audio_transcript.done"
    response_id: str
    item_id: str
    transcript: str
    output_index: int = 0
    content_index: int = 0
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "response_id": self.response_id,
                "item_id": self.item_id,
                "output_index": self.output_index,
                "content_index": self.content_index,
                "transcript": self.transcript,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseDone:
    """`response.done`. With `item_id`, the response's output lists that assistant message, with
    its `transcript` when given (as OpenAI does: the output never carries audio)."""

    TYPE: ClassVar[str] = "response.done"
    response_id: str
    status: ResponseStatus
    reason: ResponseStatusReason | None = None  # why it was cancelled / incomplete
    item_id: str | None = None
    transcript: str | None = None
    conversation_id: str | None = None
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        details: dict[str, Any] | None = None
        if self.status != "completed" or self.reason is not None:
            details = {"type": self.status}
            if self.reason is not None:
                details["reason"] = self.reason
        output: list[dict[str, Any]] = []
        if self.item_id is not None:
            content = [] if self.transcript is None else [{"type": "output_audio", "transcript": self.transcript}]
            output.append(
                {
                    "id": self.item_id,
                    "object": "realtime.item",
                    "type": "message",
                    "status": "completed" if self.status == "completed" else "incomplete",
                    "role": "assistant",
                    "content": content,
                }
            )
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "response": _response_json(self.response_id, self.status, self.conversation_id, details, output),
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationItemTruncated:
    TYPE: ClassVar[str] = "conversation.item.truncated"
    item_id: str
    audio_end_ms: int
    content_index: int = 0
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "item_id": self.item_id,
                "content_index": self.content_index,
                "audio_end_ms": self.audio_end_ms,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorEvent:
    """`error`. `client_event_id` is sent as `error.event_id`: the client event that caused it."""

    TYPE: ClassVar[str] = "error"
    message: str
    code: str | None = None
    error_type: str = "invalid_request_error"  # or "server_error"
    param: str | None = None
    client_event_id: str | None = None
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "error": {
                    "type": self.error_type,
                    "code": self.code,
                    "message": self.message,
                    "param": self.param,
                    "event_id": self.client_event_id,
                },
            }
        )


def error_event(exc: ProtocolError) -> ErrorEvent:
    """The `error` event answering a client event that raised `exc`."""
    return ErrorEvent(
        message=exc.message,
        code=exc.code.value,
        error_type="invalid_request_error",
        param=exc.param,
        client_event_id=exc.event_id,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class InterviewProgress:
    """`interview.progress` (ours): question `question_number` (1-based) of `question_count`."""

    TYPE: ClassVar[str] = "interview.progress"
    question_number: int
    question_count: int
    seconds_left: int | None  # None: no time limit
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "question_number": self.question_number,
                "question_count": self.question_count,
                "seconds_left": self.seconds_left,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class InterviewEnded:
    """`interview.ended` (ours): the last event; the edge then closes the WebSocket with 1000."""

    TYPE: ClassVar[str] = "interview.ended"
    reason: InterviewEndReason
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps({"type": self.TYPE, "event_id": self.event_id, "reason": self.reason})


@dataclass(frozen=True, slots=True, kw_only=True)
class InterviewPong:
    """`interview.pong` (ours): an `interview.ping` come back through the actor."""

    TYPE: ClassVar[str] = "interview.pong"
    client_time_ms: float
    ping_id: str | None = None
    event_id: str = field(default_factory=_new_event_id)

    def _json(self) -> str:
        return _dumps(
            {
                "type": self.TYPE,
                "event_id": self.event_id,
                "ping_id": self.ping_id,
                "client_time_ms": self.client_time_ms,
            }
        )


ServerEvent: TypeAlias = (
    SessionCreated
    | SessionUpdated
    | InputAudioBufferSpeechStarted
    | InputAudioBufferSpeechStopped
    | InputAudioBufferCommitted
    | InputAudioBufferCleared
    | InputAudioTranscriptionCompleted
    | ResponseCreated
    | ResponseOutputAudioDelta
    | ResponseOutputAudioDone
    | ResponseOutputAudioTranscriptDelta
    | ResponseOutputAudioTranscriptDone
    | ResponseDone
    | ConversationItemTruncated
    | ErrorEvent
    | InterviewProgress
    | InterviewEnded
    | InterviewPong
)


def encode_server_event(event: ServerEvent) -> str:
    """The JSON text of a server event (ASCII only, compact)."""
    return event._json()


# --------------------------------------------------------------------------------------------
# Our own events' wire shape (JSON Schema 2020-12), for docs, clients and tests.

_EVENT_ID_SCHEMA: Final[Mapping[str, Any]] = {"type": "string", "minLength": 1, "maxLength": _EVENT_ID_MAX_LENGTH}

INTERVIEW_EVENT_SCHEMAS: Final[Mapping[str, Mapping[str, Any]]] = {
    "interview.ping": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "interview.ping (client -> server)",
        "type": "object",
        "required": ["type", "client_time_ms"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "interview.ping"},
            "event_id": _EVENT_ID_SCHEMA,
            "ping_id": {"type": "string", "maxLength": _PING_ID_MAX_LENGTH},
            "client_time_ms": {"type": "number", "minimum": 0},
        },
    },
    "interview.pong": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "interview.pong (server -> client)",
        "type": "object",
        "required": ["type", "event_id", "ping_id", "client_time_ms"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "interview.pong"},
            "event_id": _EVENT_ID_SCHEMA,
            "ping_id": {"type": ["string", "null"], "maxLength": _PING_ID_MAX_LENGTH},
            "client_time_ms": {"type": "number", "minimum": 0},
        },
    },
    "interview.progress": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "interview.progress (server -> client)",
        "type": "object",
        "required": ["type", "event_id", "question_number", "question_count", "seconds_left"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "interview.progress"},
            "event_id": _EVENT_ID_SCHEMA,
            "question_number": {"type": "integer", "minimum": 1},
            "question_count": {"type": "integer", "minimum": 1},
            "seconds_left": {"type": ["integer", "null"], "minimum": 0},
        },
    },
    "interview.ended": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "interview.ended (server -> client)",
        "type": "object",
        "required": ["type", "event_id", "reason"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "interview.ended"},
            "event_id": _EVENT_ID_SCHEMA,
            "reason": {"enum": list(get_args(InterviewEndReason))},
        },
    },
}


# --------------------------------------------------------------------------------------------
# Decoding


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_raw_decode = _decoder.raw_decode
_MISSING: Final = object()


def _err(code: ProtocolErrorCode, message: str, param: str | None, event_id: str | None) -> ProtocolError:
    return ProtocolError(code, message, param=param, event_id=event_id)


def _show(value: object, limit: int = 64) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _required_str(obj: dict[str, Any], key: str, event_id: str | None, param: str | None = None) -> str:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise _err(
            ProtocolErrorCode.MISSING_REQUIRED_PARAMETER,
            f"Missing required parameter: '{key}'.",
            param or key,
            event_id,
        )
    if type(value) is not str:
        raise _err(ProtocolErrorCode.INVALID_VALUE, f"'{key}' must be a string.", param or key, event_id)
    return value


def _int_in(value: object, low: int, high: int, param: str, event_id: str | None) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _err(
            ProtocolErrorCode.INVALID_VALUE,
            f"'{param}' must be an integer from {low} to {high}, not {_show(value)}.",
            param,
            event_id,
        )
    return value


def _number_in(value: object, low: float, high: float, param: str, event_id: str | None) -> float:
    if (type(value) is int or type(value) is float) and low <= cast(float, value) <= high:
        return float(cast(float, value))
    raise _err(
        ProtocolErrorCode.INVALID_VALUE,
        f"'{param}' must be a number from {low} to {high}, not {_show(value)}.",
        param,
        event_id,
    )


def _forbidden(param: str, event_id: str | None) -> ProtocolError:
    return _err(
        ProtocolErrorCode.FORBIDDEN_SESSION_FIELD,
        f"'{param}' is decided by the interview, not by the candidate.",
        param,
        event_id,
    )


def _object(value: object, param: str, event_id: str | None) -> dict[str, Any]:
    if type(value) is not dict:
        raise _err(ProtocolErrorCode.INVALID_VALUE, f"'{param}' must be an object.", param, event_id)
    return cast(dict[str, Any], value)


_FORMAT_KEYS: Final = frozenset({"type", "rate"})


def _check_pcm_format(value: object, param: str, event_id: str | None) -> None:
    """A candidate may restate the one format we speak (SDK clients often do), nothing else."""
    fmt = _object(value, param, event_id)
    rate = fmt.get("rate", AUDIO_SAMPLE_RATE)
    if (
        fmt.get("type") != "audio/pcm"
        or type(rate) is not int
        or rate != AUDIO_SAMPLE_RATE
        or not fmt.keys() <= _FORMAT_KEYS
    ):
        raise _err(
            ProtocolErrorCode.INVALID_VALUE,
            f"'{param}' can only be audio/pcm at {AUDIO_SAMPLE_RATE} Hz (PCM16, mono).",
            param,
            event_id,
        )


_NOISE_REDUCTION_TYPES: Final = frozenset(get_args(NoiseReductionType))
_EAGERNESS: Final = frozenset(get_args(Eagerness))


def _decode_append(obj: dict[str, Any], event_id: str | None) -> InputAudioBufferAppend:
    audio = obj.get("audio")
    if type(audio) is not str:
        if audio is None and "audio" not in obj:
            raise _err(
                ProtocolErrorCode.MISSING_REQUIRED_PARAMETER, "Missing required parameter: 'audio'.", "audio", event_id
            )
        raise _err(ProtocolErrorCode.INVALID_VALUE, "'audio' must be a base64 string.", "audio", event_id)
    try:
        pcm = binascii.a2b_base64(audio, strict_mode=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        raise _err(ProtocolErrorCode.INVALID_AUDIO, "'audio' is not valid base64.", "audio", event_id) from None
    if len(pcm) & 1:
        raise _err(
            ProtocolErrorCode.INVALID_AUDIO,
            f"'audio' must hold whole 16-bit PCM samples; got {len(pcm)} bytes.",
            "audio",
            event_id,
        )
    return InputAudioBufferAppend(audio=pcm, event_id=event_id)


def _decode_commit(obj: dict[str, Any], event_id: str | None) -> InputAudioBufferCommit:
    return InputAudioBufferCommit(event_id=event_id)


def _decode_clear(obj: dict[str, Any], event_id: str | None) -> InputAudioBufferClear:
    return InputAudioBufferClear(event_id=event_id)


def _decode_cancel(obj: dict[str, Any], event_id: str | None) -> ResponseCancel:
    response_id = obj.get("response_id")
    if response_id is not None and type(response_id) is not str:
        raise _err(ProtocolErrorCode.INVALID_VALUE, "'response_id' must be a string.", "response_id", event_id)
    return ResponseCancel(response_id=response_id, event_id=event_id)


def _decode_truncate(obj: dict[str, Any], event_id: str | None) -> ConversationItemTruncate:
    item_id = _required_str(obj, "item_id", event_id)
    ints: list[int] = []
    for key in ("content_index", "audio_end_ms"):
        value = obj.get(key, _MISSING)
        if value is _MISSING:
            raise _err(
                ProtocolErrorCode.MISSING_REQUIRED_PARAMETER, f"Missing required parameter: '{key}'.", key, event_id
            )
        ints.append(_int_in(value, 0, _MAX_INDEX, key, event_id))
    return ConversationItemTruncate(item_id=item_id, content_index=ints[0], audio_end_ms=ints[1], event_id=event_id)


def _decode_ping(obj: dict[str, Any], event_id: str | None) -> InterviewPing:
    value = obj.get("client_time_ms", _MISSING)
    if value is _MISSING:
        raise _err(
            ProtocolErrorCode.MISSING_REQUIRED_PARAMETER,
            "Missing required parameter: 'client_time_ms'.",
            "client_time_ms",
            event_id,
        )
    client_time_ms = _number_in(value, 0.0, math.inf, "client_time_ms", event_id)
    if not math.isfinite(client_time_ms):  # json reads 1e400 as inf
        raise _err(ProtocolErrorCode.INVALID_VALUE, "'client_time_ms' must be finite.", "client_time_ms", event_id)
    ping_id = obj.get("ping_id")
    if ping_id is not None and (type(ping_id) is not str or len(ping_id) > _PING_ID_MAX_LENGTH):
        raise _err(
            ProtocolErrorCode.INVALID_VALUE,
            f"'ping_id' must be a string of at most {_PING_ID_MAX_LENGTH} characters.",
            "ping_id",
            event_id,
        )
    return InterviewPing(client_time_ms=client_time_ms, ping_id=ping_id, event_id=event_id)


def _decode_session_update(obj: dict[str, Any], event_id: str | None) -> SessionUpdate:
    """Deny by default: every key that is not explicitly allowed is forbidden_session_field."""
    raw = obj.get("session", _MISSING)
    if raw is _MISSING:
        raise _err(
            ProtocolErrorCode.MISSING_REQUIRED_PARAMETER, "Missing required parameter: 'session'.", "session", event_id
        )
    session = _object(raw, "session", event_id)
    changes: dict[str, Any] = {}
    for key, value in session.items():
        if key == "type":
            # Required by the schema and always sent by the SDK; a transcription-only session would
            # stop the interviewer.
            if value == "transcription":
                raise _forbidden("session.type", event_id)
            if value != "realtime":
                raise _err(
                    ProtocolErrorCode.INVALID_VALUE, "'session.type' must be 'realtime'.", "session.type", event_id
                )
        elif key == "audio":
            _decode_session_audio(_object(value, "session.audio", event_id), changes, event_id)
        else:
            raise _forbidden(f"session.{key}", event_id)
    return SessionUpdate(event_id=event_id, **changes)


def _decode_session_audio(audio: dict[str, Any], changes: dict[str, Any], event_id: str | None) -> None:
    for key, value in audio.items():
        if key == "input":
            _decode_session_audio_input(_object(value, "session.audio.input", event_id), changes, event_id)
        elif key == "output":
            out = _object(value, "session.audio.output", event_id)
            for okey, ovalue in out.items():
                param = f"session.audio.output.{okey}"
                if okey == "format":
                    _check_pcm_format(ovalue, param, event_id)
                elif okey == "speed":
                    changes["output_speed"] = _number_in(ovalue, *OUTPUT_SPEED_RANGE, param, event_id)
                else:  # voice and anything else
                    raise _forbidden(param, event_id)
        else:
            raise _forbidden(f"session.audio.{key}", event_id)


def _decode_session_audio_input(audio_in: dict[str, Any], changes: dict[str, Any], event_id: str | None) -> None:
    for key, value in audio_in.items():
        param = f"session.audio.input.{key}"
        if key == "format":
            _check_pcm_format(value, param, event_id)
        elif key == "noise_reduction":
            if value is None:
                changes["noise_reduction"] = "off"
                continue
            nr = _object(value, param, event_id)
            for nkey in nr:
                if nkey != "type":  # e.g. "strength": server-decided
                    raise _forbidden(f"{param}.{nkey}", event_id)
            nr_type = nr.get("type")
            if nr_type not in _NOISE_REDUCTION_TYPES:
                raise _err(
                    ProtocolErrorCode.INVALID_VALUE,
                    f"'{param}.type' must be one of {sorted(_NOISE_REDUCTION_TYPES)}.",
                    f"{param}.type",
                    event_id,
                )
            changes["noise_reduction"] = nr_type
        elif key == "turn_detection":
            if value is None:  # no VAD means no replies: a candidate cannot send response.create
                raise _forbidden(param, event_id)
            _decode_turn_detection(_object(value, param, event_id), changes, event_id)
        else:  # transcription (the tenant's record depends on it), and anything else
            raise _forbidden(param, event_id)


def _decode_turn_detection(td: dict[str, Any], changes: dict[str, Any], event_id: str | None) -> None:
    base = "session.audio.input.turn_detection"
    td_type = td.get("type", _MISSING)
    if td_type is _MISSING:
        raise _err(
            ProtocolErrorCode.MISSING_REQUIRED_PARAMETER,
            f"Missing required parameter: '{base}.type'.",
            f"{base}.type",
            event_id,
        )
    if td_type == "server_vad":
        for key, value in td.items():
            param = f"{base}.{key}"
            if key == "type":
                continue
            if key == "silence_duration_ms":
                changes["silence_duration_ms"] = _int_in(value, *SILENCE_DURATION_MS_RANGE, param, event_id)
            elif key == "prefix_padding_ms":
                changes["prefix_padding_ms"] = _int_in(value, *PREFIX_PADDING_MS_RANGE, param, event_id)
            elif key == "threshold":
                changes["vad_threshold"] = _number_in(value, *VAD_THRESHOLD_RANGE, param, event_id)
            else:  # create_response, interrupt_response, idle_timeout_ms: they drive the interview
                raise _forbidden(param, event_id)
    elif td_type == "semantic_vad":
        for key, value in td.items():
            param = f"{base}.{key}"
            if key == "type":
                continue
            if key == "eagerness":
                if value not in _EAGERNESS:
                    raise _err(
                        ProtocolErrorCode.INVALID_VALUE,
                        f"'{param}' must be one of {sorted(_EAGERNESS)}.",
                        param,
                        event_id,
                    )
                changes["eagerness"] = value
            else:
                raise _forbidden(param, event_id)
    else:
        raise _err(
            ProtocolErrorCode.INVALID_VALUE,
            f"'{base}.type' must be 'server_vad' or 'semantic_vad'.",
            f"{base}.type",
            event_id,
        )
    changes["turn_detection_type"] = td_type


_DECODERS: Final[Mapping[str, Any]] = {
    "input_audio_buffer.append": _decode_append,
    "input_audio_buffer.commit": _decode_commit,
    "input_audio_buffer.clear": _decode_clear,
    "response.cancel": _decode_cancel,
    "conversation.item.truncate": _decode_truncate,
    "session.update": _decode_session_update,
    "interview.ping": _decode_ping,
}

# OpenAI client events a candidate may not send here (the server drives the conversation).
_REFUSED: Final = frozenset(
    {
        "conversation.item.create",
        "conversation.item.delete",
        "conversation.item.retrieve",
        "output_audio_buffer.clear",
        "response.create",
        "transcription_session.update",
    }
)


def decode_client_event(data: str | bytes, *, max_bytes: int) -> ClientEvent:
    """Decode one WebSocket message from a candidate. Raises `ProtocolError` for anything bad.

    `data` is the text (str) or its UTF-8 bytes; more than `max_bytes` bytes of UTF-8 is
    `message_too_large` (checked before parsing). Unknown fields of accepted events are ignored,
    except in `session.update`, which allows only what `SessionUpdate` holds.
    """
    if isinstance(data, str):
        n = len(data)
        # len() counts code points: exact for ASCII (an O(1) check), a lower bound otherwise.
        if n > max_bytes or (
            n * 4 > max_bytes and not data.isascii() and len(data.encode("utf-8", "replace")) > max_bytes
        ):
            raise _err(ProtocolErrorCode.MESSAGE_TOO_LARGE, f"Messages are limited to {max_bytes} bytes.", None, None)
        text = data
    else:
        if len(data) > max_bytes:
            raise _err(ProtocolErrorCode.MESSAGE_TOO_LARGE, f"Messages are limited to {max_bytes} bytes.", None, None)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _err(ProtocolErrorCode.INVALID_JSON, "The message is not UTF-8 text.", None, None) from None

    try:
        obj, end = _raw_decode(text)
        if end != len(text) and not text[end:].isspace():
            raise ValueError("trailing data")
    except (ValueError, RecursionError):
        try:  # the slow path: leading whitespace is fine, anything else gets the parser's message
            obj = _decoder.decode(text)
        except (ValueError, RecursionError) as exc:
            raise _err(ProtocolErrorCode.INVALID_JSON, f"The message is not JSON: {exc}", None, None) from None

    if type(obj) is not dict:
        raise _err(ProtocolErrorCode.INVALID_EVENT, "An event must be a JSON object.", None, None)
    event_id = obj.get("event_id")
    if event_id is not None and (type(event_id) is not str or len(event_id) > _EVENT_ID_MAX_LENGTH):
        raise _err(
            ProtocolErrorCode.INVALID_VALUE,
            f"'event_id' must be a string of at most {_EVENT_ID_MAX_LENGTH} characters.",
            "event_id",
            None,
        )
    event_type = obj.get("type")
    if event_type == "input_audio_buffer.append":  # the hot path: 50 per second per candidate
        return _decode_append(obj, event_id)
    if type(event_type) is not str:
        if event_type is None:
            raise _err(ProtocolErrorCode.INVALID_EVENT, "The 'type' field is missing.", "type", event_id)
        raise _err(ProtocolErrorCode.INVALID_EVENT, "The 'type' field must be a string.", "type", event_id)
    decoder = _DECODERS.get(event_type)
    if decoder is None:
        if event_type in _REFUSED:
            message = f"'{event_type}' is not accepted from a candidate."
        else:
            message = f"Unknown event type {_show(event_type)}."
        raise _err(ProtocolErrorCode.UNKNOWN_EVENT, message, "type", event_id)
    return cast(ClientEvent, decoder(obj, event_id))
