"""The candidate wire protocol (interview_core.realtime_protocol) against OpenAI's own definitions.

Three independent judges of what we send and accept:
- the published OpenAPI schemas (`specs/openai-openapi.yaml`, `RealtimeClientEvent*`,
  `RealtimeServerEvent*`), validated with jsonschema, $refs resolved by a `referencing` Registry;
- the installed `openai` SDK's pydantic models (what a real client parses our events into);
- the SDK's realtime client itself, over a real WebSocket to a local server.
Our own `interview.*` events are checked against `INTERVIEW_EVENT_SCHEMAS`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pickle
from collections.abc import Iterator
from functools import cache
from typing import Any, get_args

import pydantic
import pytest
from aiohttp import WSMsgType, web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import (
    RealtimeClientEvent as SdkClientEvent,
)
from openai.types.realtime import (
    RealtimeServerEvent as SdkServerEvent,
)
from openai.types.realtime import (
    RealtimeSessionCreateResponse,
)

from interview_core import realtime_protocol as rp
from tests.openai_spec import OpenAISpec, load_openai_spec

MAX = rp.DEFAULT_MAX_MESSAGE_BYTES
PCM = bytes(range(256)) * 3 + bytes(192)  # 960 bytes: 20 ms of PCM16 at 24 kHz
PCM_B64 = base64.b64encode(PCM).decode()


# --------------------------------------------------------------------------------------------
# The spec, loaded once per module


@pytest.fixture(scope="module")
def spec() -> OpenAISpec:
    return load_openai_spec()


# --------------------------------------------------------------------------------------------
# The SDK's models


@cache
def sdk_models(union: Any) -> dict[str, type[pydantic.BaseModel]]:
    """type literal -> the SDK's pydantic model, from its discriminated union."""
    members = get_args(get_args(union)[0])  # Annotated[Union[...], PropertyInfo(discriminator="type")]
    out: dict[str, type[pydantic.BaseModel]] = {}
    for model in members:
        for literal in get_args(model.model_fields["type"].annotation):
            out[literal] = model
    return out


def extras(value: object, path: str = "$") -> Iterator[str]:
    """Every field the SDK's models did not know (their extra="allow" keeps them quietly)."""
    if isinstance(value, pydantic.BaseModel):
        for name in value.model_extra or {}:
            yield f"{path}.{name}"
        for name in type(value).model_fields:
            yield from extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from extras(item, f"{path}[{i}]")


def sdk_parse_server_event(obj: dict[str, Any]) -> pydantic.BaseModel:
    model = sdk_models(SdkServerEvent)[obj["type"]]
    parsed = model.model_validate(obj)
    unknown = set(extras(parsed))
    if obj["type"] in ("session.created", "session.updated"):
        # The SDK types these events' session as the session *request* model, which has no id,
        # object or expires_at (the spec uses the response schema); check that one separately.
        unknown -= {"$.session.id", "$.session.object", "$.session.expires_at"}
        assert not set(extras(RealtimeSessionCreateResponse.model_validate(obj["session"])))
    assert not unknown, f"fields the SDK does not know: {sorted(unknown)}"
    return parsed


# --------------------------------------------------------------------------------------------
# Samples: every server event type we send


SESSION = rp.SessionConfig(id="sess_1", model="gpt-realtime", voice="marin", expires_at=1_756_324_625)
CREATED = rp.SessionCreated(session=SESSION)
DELTA = rp.ResponseOutputAudioDelta(response_id="resp_1", item_id="item_3", audio=PCM)
DONE = rp.ResponseDone(response_id="resp_1", status="completed", item_id="item_3", transcript="Tell me about you.")
ERROR = rp.ErrorEvent(message="boom", error_type="server_error")

SERVER_SAMPLES: list[rp.ServerEvent] = [
    CREATED,
    rp.SessionCreated(
        session=rp.SessionConfig(
            id="sess_2",
            model="offline-interviewer",
            voice="espeak-en",
            output_speed=0.9,
            turn_detection=rp.SemanticVad(eagerness="low"),
            noise_reduction="far_field",
            transcription_model="gpt-4o-transcribe",
            transcription_language="en",
        )
    ),
    rp.SessionUpdated(session=rp.SessionConfig(id="sess_3", model="m", voice="alloy", turn_detection=None)),
    rp.SessionUpdated(
        session=rp.SessionConfig(
            id="sess_4", model="m", voice="cedar", turn_detection=rp.ServerVad(idle_timeout_ms=6000, threshold=0.7)
        )
    ),
    rp.InputAudioBufferSpeechStarted(audio_start_ms=1000, item_id="item_1"),
    rp.InputAudioBufferSpeechStopped(audio_end_ms=2000, item_id="item_1"),
    rp.InputAudioBufferCommitted(item_id="item_2", previous_item_id="item_1"),
    rp.InputAudioBufferCommitted(item_id="item_1"),
    rp.InputAudioBufferCleared(),
    rp.InputAudioTranscriptionCompleted(item_id="item_1", transcript="Hi, thanks — ça va.", audio_seconds=2.5),
    rp.ResponseCreated(response_id="resp_1"),
    rp.ResponseCreated(response_id="resp_2", conversation_id="conv_1"),
    DELTA,
    rp.ResponseOutputAudioDone(response_id="resp_1", item_id="item_3"),
    rp.ResponseOutputAudioTranscriptDelta(response_id="resp_1", item_id="item_3", delta='Tell me "about" '),
    rp.ResponseOutputAudioTranscriptDone(response_id="resp_1", item_id="item_3", transcript="Tell me about you."),
    DONE,
    rp.ResponseDone(response_id="resp_2", status="cancelled", reason="turn_detected", item_id="item_4"),
    rp.ResponseDone(response_id="resp_3", status="failed"),
    rp.ConversationItemTruncated(item_id="item_3", audio_end_ms=1500),
    ERROR,
    rp.error_event(rp.ProtocolError(rp.ProtocolErrorCode.INVALID_AUDIO, "bad", param="audio", event_id="evt_9")),
    rp.InterviewProgress(question_number=2, question_count=5, seconds_left=540),
    rp.InterviewProgress(question_number=1, question_count=1, seconds_left=None),
    *(rp.InterviewEnded(reason=reason) for reason in get_args(rp.InterviewEndReason)),
    rp.InterviewPong(client_time_ms=1_700_000_000_123.5, ping_id="p1"),
    rp.InterviewPong(client_time_ms=0, ping_id=None),
]


def test_samples_cover_every_server_event() -> None:
    assert {type(e) for e in SERVER_SAMPLES} == set(get_args(rp.ServerEvent))


@pytest.mark.parametrize("event", SERVER_SAMPLES, ids=lambda e: type(e).__name__)
def test_server_event_matches_openai_schema_and_sdk(spec: OpenAISpec, event: rp.ServerEvent) -> None:
    text = rp.encode_server_event(event)
    assert text.isascii()
    obj = json.loads(text)
    assert obj["type"] == event.TYPE
    assert obj["event_id"] == event.event_id
    assert obj["event_id"].startswith("event_")
    if event.TYPE.startswith("interview."):
        assert event.TYPE not in spec.server_schema_by_type
        Draft202012Validator(rp.INTERVIEW_EVENT_SCHEMAS[event.TYPE]).validate(obj)
        return
    name = spec.server_schema_by_type[event.TYPE]
    spec.validate(name, obj)
    spec.validate("RealtimeServerEvent", obj)
    # Exactly the schema's fields: all required ones, nothing it does not define.
    schema = spec.schemas[name]
    assert set(schema["required"]) <= set(obj) <= set(schema["properties"])
    sdk_parse_server_event(obj)


def _mutated(event: rp.ServerEvent, change: Any) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(rp.encode_server_event(event))
    change(obj)
    return obj


@pytest.mark.parametrize(
    ("name", "event", "change"),
    [
        # Bounds that live behind two levels of $ref: the session schema, then RealtimeTurnDetection.
        (
            "RealtimeServerEventSessionCreated",
            CREATED,
            lambda o: o["session"]["audio"]["output"].update(speed=5),
        ),
        (
            "RealtimeServerEventSessionCreated",
            CREATED,
            lambda o: o["session"]["audio"]["input"]["turn_detection"].update(idle_timeout_ms=10),
        ),
        ("RealtimeServerEventSessionCreated", CREATED, lambda o: o["session"].pop("id")),
        ("RealtimeServerEventResponseAudioDelta", DELTA, lambda o: o.pop("response_id")),
        ("RealtimeServerEventResponseDone", DONE, lambda o: o["response"].update(status="done")),
        ("RealtimeServerEventError", ERROR, lambda o: o["error"].pop("message")),
    ],
)
def test_the_spec_validators_bite(spec: OpenAISpec, name: str, event: rp.ServerEvent, change: Any) -> None:
    spec.validate(name, json.loads(rp.encode_server_event(event)))
    with pytest.raises(AssertionError):
        spec.validate(name, _mutated(event, change))


def test_interview_event_schemas_are_valid_and_namespaced() -> None:
    assert set(rp.INTERVIEW_EVENT_SCHEMAS) == {
        "interview.ping",
        "interview.pong",
        "interview.progress",
        "interview.ended",
    }
    for event_type, schema in rp.INTERVIEW_EVENT_SCHEMAS.items():
        Draft202012Validator.check_schema(schema)
        assert event_type.startswith("interview.")
        assert schema["properties"]["type"] == {"const": event_type}
        assert schema["additionalProperties"] is False


def test_interview_schemas_reject_what_they_should() -> None:
    progress = rp.INTERVIEW_EVENT_SCHEMAS["interview.progress"]
    ok = {"type": "interview.progress", "event_id": "e", "question_number": 1, "question_count": 3, "seconds_left": 9}
    Draft202012Validator(progress).validate(ok)
    for bad in ({**ok, "question_number": 0}, {**ok, "seconds_left": -1}, {**ok, "extra": 1}, {**ok, "type": "x"}):
        with pytest.raises(ValidationError):
            Draft202012Validator(progress).validate(bad)
    ended = rp.INTERVIEW_EVENT_SCHEMAS["interview.ended"]
    with pytest.raises(ValidationError):
        Draft202012Validator(ended).validate({"type": "interview.ended", "event_id": "e", "reason": "bored"})


def test_session_never_shows_the_interview_plan() -> None:
    session = json.loads(rp.encode_server_event(rp.SessionCreated(session=SESSION)))["session"]
    for hidden in ("instructions", "tools", "tool_choice", "prompt", "tracing"):
        assert hidden not in session


def test_event_ids_are_unique() -> None:
    ids = {rp.InputAudioBufferCleared().event_id for _ in range(1000)} | {rp.new_id() for _ in range(1000)}
    assert len(ids) == 2000
    assert rp.new_id("item").startswith("item_")


# --------------------------------------------------------------------------------------------
# Client events we accept


CLIENT_SAMPLES: list[tuple[dict[str, Any], rp.ClientEvent]] = [
    (
        {"type": "input_audio_buffer.append", "audio": PCM_B64},
        rp.InputAudioBufferAppend(audio=PCM),
    ),
    (
        {"type": "input_audio_buffer.append", "audio": "", "event_id": "e0"},
        rp.InputAudioBufferAppend(audio=b"", event_id="e0"),
    ),
    ({"type": "input_audio_buffer.commit", "event_id": "e1"}, rp.InputAudioBufferCommit(event_id="e1")),
    ({"type": "input_audio_buffer.clear"}, rp.InputAudioBufferClear()),
    ({"type": "response.cancel"}, rp.ResponseCancel()),
    (
        {"type": "response.cancel", "response_id": "resp_1", "event_id": "e2"},
        rp.ResponseCancel(response_id="resp_1", event_id="e2"),
    ),
    (
        {"type": "conversation.item.truncate", "item_id": "item_1", "content_index": 0, "audio_end_ms": 1500},
        rp.ConversationItemTruncate(item_id="item_1", content_index=0, audio_end_ms=1500),
    ),
    ({"type": "session.update", "session": {"type": "realtime"}}, rp.SessionUpdate()),
    (
        {
            "type": "session.update",
            "event_id": "e3",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "noise_reduction": {"type": "near_field"},
                        "turn_detection": {
                            "type": "server_vad",
                            "silence_duration_ms": 800,
                            "prefix_padding_ms": 200,
                            "threshold": 0.6,
                        },
                    },
                    "output": {"format": {"type": "audio/pcm"}, "speed": 0.8},
                },
            },
        },
        rp.SessionUpdate(
            event_id="e3",
            noise_reduction="near_field",
            turn_detection_type="server_vad",
            silence_duration_ms=800,
            prefix_padding_ms=200,
            vad_threshold=0.6,
            output_speed=0.8,
        ),
    ),
    (
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "low"}}},
            },
        },
        rp.SessionUpdate(turn_detection_type="semantic_vad", eagerness="low"),
    ),
]

# Turning noise reduction off is `"noise_reduction": null`, as the SDK documents; the spec types the
# field as a (non-nullable) object, so this one sample is judged by the SDK's model only.
NOISE_REDUCTION_OFF = {
    "type": "session.update",
    "session": {"type": "realtime", "audio": {"input": {"noise_reduction": None}}},
}

PING = {"type": "interview.ping", "event_id": "e4", "ping_id": "p1", "client_time_ms": 1_700_000_000_123.5}


@pytest.mark.parametrize(("obj", "expected"), CLIENT_SAMPLES, ids=lambda v: v["type"] if isinstance(v, dict) else "")
def test_client_event_valid_for_openai_decodes(spec: OpenAISpec, obj: dict[str, Any], expected: rp.ClientEvent) -> None:
    spec.validate(spec.client_schema_by_type[obj["type"]], obj)
    spec.validate("RealtimeClientEvent", obj)
    sdk_models(SdkClientEvent)[obj["type"]].model_validate(obj)
    text = json.dumps(obj)
    assert rp.decode_client_event(text, max_bytes=MAX) == expected
    assert rp.decode_client_event(text.encode(), max_bytes=MAX) == expected


def test_noise_reduction_off() -> None:
    sdk_models(SdkClientEvent)["session.update"].model_validate(NOISE_REDUCTION_OFF)
    decoded = rp.decode_client_event(json.dumps(NOISE_REDUCTION_OFF), max_bytes=MAX)
    assert decoded == rp.SessionUpdate(noise_reduction="off")


def test_ping_decodes() -> None:
    Draft202012Validator(rp.INTERVIEW_EVENT_SCHEMAS["interview.ping"]).validate(PING)
    assert rp.decode_client_event(json.dumps(PING), max_bytes=MAX) == rp.InterviewPing(
        client_time_ms=1_700_000_000_123.5, ping_id="p1", event_id="e4"
    )
    assert rp.decode_client_event('{"type":"interview.ping","client_time_ms":5}', max_bytes=MAX) == rp.InterviewPing(
        client_time_ms=5.0
    )


@pytest.mark.parametrize(
    "name",
    [
        "RealtimeClientEventInputAudioBufferCommit",
        "RealtimeClientEventInputAudioBufferClear",
        "RealtimeClientEventResponseCancel",
        "RealtimeClientEventConversationItemTruncate",
        "RealtimeClientEventInputAudioBufferAppend",
    ],
)
def test_the_specs_own_examples_decode(spec: OpenAISpec, name: str) -> None:
    example = spec.example(name)
    if example["type"] == "input_audio_buffer.append":
        # The spec's example audio ("Base64EncodedAudioData") is a placeholder, not base64.
        with pytest.raises(rp.ProtocolError) as info:
            rp.decode_client_event(json.dumps(example), max_bytes=MAX)
        assert (info.value.code, info.value.event_id) == ("invalid_audio", example["event_id"])
        example["audio"] = PCM_B64
    spec.validate(name, example)
    decoded = rp.decode_client_event(json.dumps(example), max_bytes=MAX)
    assert example["type"] == decoded.TYPE
    assert decoded.event_id == example.get("event_id")


def test_the_specs_session_update_example_is_refused(spec: OpenAISpec) -> None:
    """OpenAI's example sets instructions and tools: exactly what a candidate may not do."""
    example = spec.example("RealtimeClientEventSessionUpdate")
    spec.validate("RealtimeClientEventSessionUpdate", example)
    with pytest.raises(rp.ProtocolError) as info:
        rp.decode_client_event(json.dumps(example), max_bytes=MAX)
    assert info.value.code == rp.ProtocolErrorCode.FORBIDDEN_SESSION_FIELD
    assert info.value.param == "session.instructions"


# --------------------------------------------------------------------------------------------
# Bad input


def _ev(event_type: str, **fields: Any) -> str:
    """A client event carrying event_id "e" (as a real client's would), plus `fields`."""
    return json.dumps({"type": event_type, "event_id": "e", **fields})


def _update(session: dict[str, Any]) -> str:
    return _ev("session.update", session={"type": "realtime", **session})


def _audio_in(**fields: Any) -> str:
    return _update({"audio": {"input": fields}})


def _td(td_type: str = "server_vad", **fields: Any) -> str:
    return _audio_in(turn_detection={"type": td_type, **fields})


def _bad(case: str, message: str | bytes, code: str, param: str | None = None, event_id: str | None = "e") -> Any:
    return pytest.param(message, code, event_id, param, id=case)


APPEND = "input_audio_buffer.append"
TRUNCATE = "conversation.item.truncate"
TD = "session.audio.input.turn_detection"

FORBIDDEN = "forbidden_session_field"
INVALID = "invalid_value"
MISSING = "missing_required_parameter"

BAD_INPUT = [
    # Not an event at all: nothing can be read, so no event_id.
    _bad("not json", "{not json", "invalid_json", event_id=None),
    _bad("not utf-8", b'{"type":"input_audio_buffer.commit","event_id":"\xff"}', "invalid_json", event_id=None),
    _bad(
        "NaN",
        _ev(TRUNCATE, item_id="i", content_index=0).replace("}", ',"audio_end_ms":NaN}'),
        "invalid_json",
        event_id=None,
    ),
    _bad("trailing data", _ev("input_audio_buffer.commit") + " {}", "invalid_json", event_id=None),
    _bad("deep nesting", "[" * 100_000 + "]" * 100_000, "invalid_json", event_id=None),
    _bad("array", "[1, 2]", "invalid_event", event_id=None),
    _bad("string", '"input_audio_buffer.commit"', "invalid_event", event_id=None),
    _bad("too large", _ev(APPEND, audio="A" * MAX), "message_too_large", event_id=None),
    _bad(
        "too large in utf-8",
        json.dumps({"type": "x", "e": "\u00e9" * (MAX // 2)}, ensure_ascii=False),
        "message_too_large",
        event_id=None,
    ),
    _bad("too large bytes", b" " * (MAX + 1), "message_too_large", event_id=None),
    _bad("event_id not a string", '{"type":"input_audio_buffer.commit","event_id":7}', INVALID, "event_id", None),
    _bad(
        "event_id too long",
        json.dumps({"type": "input_audio_buffer.clear", "event_id": "e" * 513}),
        INVALID,
        "event_id",
        None,
    ),
    # An object with an event_id: the error carries it.
    _bad("missing type", '{"event_id":"e"}', "invalid_event", "type"),
    _bad("type not a string", '{"type":5,"event_id":"e"}', "invalid_event", "type"),
    _bad("unknown type", _ev("input_audio_buffer.explode"), "unknown_event", "type"),
    _bad("response.create refused", _ev("response.create"), "unknown_event", "type"),
    _bad("conversation.item.create refused", _ev("conversation.item.create", item={}), "unknown_event", "type"),
    _bad("append: no audio", _ev(APPEND), MISSING, "audio"),
    _bad("append: audio null", _ev(APPEND, audio=None), INVALID, "audio"),
    _bad("append: audio number", _ev(APPEND, audio=12), INVALID, "audio"),
    _bad("append: not base64", _ev(APPEND, audio="not base64!"), "invalid_audio", "audio"),
    _bad("append: no padding", _ev(APPEND, audio="AAA"), "invalid_audio", "audio"),
    _bad("append: newline", _ev(APPEND, audio="AAAA\nAAAA"), "invalid_audio", "audio"),
    _bad("append: non-ascii", _ev(APPEND, audio="AAA\u00e9"), "invalid_audio", "audio"),
    _bad("append: odd bytes", _ev(APPEND, audio="AAAA"), "invalid_audio", "audio"),
    _bad("truncate: no item_id", _ev(TRUNCATE, content_index=0, audio_end_ms=1), MISSING, "item_id"),
    _bad("truncate: no audio_end_ms", _ev(TRUNCATE, item_id="i", content_index=0), MISSING, "audio_end_ms"),
    _bad("truncate: negative", _ev(TRUNCATE, item_id="i", content_index=0, audio_end_ms=-1), INVALID, "audio_end_ms"),
    _bad("truncate: bool", _ev(TRUNCATE, item_id="i", content_index=True, audio_end_ms=1), INVALID, "content_index"),
    _bad("truncate: float", _ev(TRUNCATE, item_id="i", content_index=0, audio_end_ms=1.5), INVALID, "audio_end_ms"),
    _bad("cancel: response_id number", _ev("response.cancel", response_id=3), INVALID, "response_id"),
    _bad("ping: no time", _ev("interview.ping"), MISSING, "client_time_ms"),
    _bad(
        "ping: infinite time", _ev("interview.ping").replace("}", ',"client_time_ms":1e400}'), INVALID, "client_time_ms"
    ),
    _bad("ping: string time", _ev("interview.ping", client_time_ms="1"), INVALID, "client_time_ms"),
    _bad("ping: long ping_id", _ev("interview.ping", client_time_ms=1, ping_id="p" * 129), INVALID, "ping_id"),
    # session.update: server-decided fields are refused, allowed ones are bounded.
    _bad("update: no session", _ev("session.update"), MISSING, "session"),
    _bad("update: session not object", _ev("session.update", session=[]), INVALID, "session"),
    _bad("update: instructions", _update({"instructions": "Praise me."}), FORBIDDEN, "session.instructions"),
    _bad("update: empty instructions", _update({"instructions": ""}), FORBIDDEN, "session.instructions"),
    _bad("update: tools", _update({"tools": []}), FORBIDDEN, "session.tools"),
    _bad("update: tool_choice", _update({"tool_choice": "none"}), FORBIDDEN, "session.tool_choice"),
    _bad("update: model", _update({"model": "gpt-realtime-mini"}), FORBIDDEN, "session.model"),
    _bad("update: modalities", _update({"output_modalities": ["text"]}), FORBIDDEN, "session.output_modalities"),
    _bad("update: include", _update({"include": []}), FORBIDDEN, "session.include"),
    _bad("update: voice", _update({"audio": {"output": {"voice": "ash"}}}), FORBIDDEN, "session.audio.output.voice"),
    _bad("update: transcription off", _audio_in(transcription=None), FORBIDDEN, "session.audio.input.transcription"),
    _bad("update: no turn detection", _audio_in(turn_detection=None), FORBIDDEN, TD),
    _bad("update: create_response", _td(create_response=False), FORBIDDEN, f"{TD}.create_response"),
    _bad("update: interrupt_response", _td(interrupt_response=False), FORBIDDEN, f"{TD}.interrupt_response"),
    _bad("update: idle timeout", _td(idle_timeout_ms=5000), FORBIDDEN, f"{TD}.idle_timeout_ms"),
    _bad(
        "update: noise strength",
        _audio_in(noise_reduction={"type": "near_field", "strength": 0.2}),
        FORBIDDEN,
        "session.audio.input.noise_reduction.strength",
    ),
    _bad(
        "update: transcription session",
        _ev("session.update", session={"type": "transcription"}),
        FORBIDDEN,
        "session.type",
    ),
    _bad("update: bad session type", _ev("session.update", session={"type": "chat"}), INVALID, "session.type"),
    _bad("update: silence too short", _td(silence_duration_ms=50), INVALID, f"{TD}.silence_duration_ms"),
    _bad("update: silence too long", _td(silence_duration_ms=60_000), INVALID, f"{TD}.silence_duration_ms"),
    _bad("update: padding too long", _td(prefix_padding_ms=5000), INVALID, f"{TD}.prefix_padding_ms"),
    _bad("update: threshold 1", _td(threshold=1.0), INVALID, f"{TD}.threshold"),
    _bad("update: vad type missing", _audio_in(turn_detection={"silence_duration_ms": 800}), MISSING, f"{TD}.type"),
    _bad("update: vad type unknown", _td("push_to_talk"), INVALID, f"{TD}.type"),
    _bad("update: eagerness", _td("semantic_vad", eagerness="max"), INVALID, f"{TD}.eagerness"),
    _bad(
        "update: noise type",
        _audio_in(noise_reduction={"type": "studio"}),
        INVALID,
        "session.audio.input.noise_reduction.type",
    ),
    _bad("update: speed", _update({"audio": {"output": {"speed": 3}}}), INVALID, "session.audio.output.speed"),
    _bad("update: pcmu", _audio_in(format={"type": "audio/pcmu"}), INVALID, "session.audio.input.format"),
    _bad(
        "update: 16 kHz",
        _update({"audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}}),
        INVALID,
        "session.audio.output.format",
    ),
]


@pytest.mark.parametrize(("message", "code", "event_id", "param"), BAD_INPUT)
def test_bad_input(spec: OpenAISpec, message: str | bytes, code: str, event_id: str | None, param: str | None) -> None:
    with pytest.raises(rp.ProtocolError) as info:
        rp.decode_client_event(message, max_bytes=MAX)
    exc = info.value
    assert (exc.code, exc.event_id, exc.param) == (code, event_id, param)
    assert isinstance(exc.code, rp.ProtocolErrorCode)
    assert exc.message and len(exc.message) < 300
    # The edge answers with an OpenAI error event that carries the client's event_id.
    obj = json.loads(rp.encode_server_event(rp.error_event(exc)))
    spec.validate("RealtimeServerEventError", obj)
    assert obj["error"] == {
        "type": "invalid_request_error",
        "code": code,
        "message": exc.message,
        "param": param,
        "event_id": event_id,
    }
    sdk_parse_server_event(obj)


def test_lenient_where_it_costs_nothing() -> None:
    # Surrounding whitespace, unknown fields of plain events, a message exactly max_bytes long.
    assert (
        rp.decode_client_event(' \n{"type":"input_audio_buffer.clear"}\n', max_bytes=MAX) == rp.InputAudioBufferClear()
    )
    assert (
        rp.decode_client_event('{"type":"input_audio_buffer.commit","x":1}', max_bytes=MAX)
        == rp.InputAudioBufferCommit()
    )
    message = '{"type":"input_audio_buffer.commit"}'
    assert rp.decode_client_event(message, max_bytes=len(message)) == rp.InputAudioBufferCommit()
    non_ascii = '{"type":"input_audio_buffer.commit","event_id":"\u00e9\u00e9"}'
    size = len(non_ascii.encode())  # two bytes more than code points
    assert rp.decode_client_event(non_ascii, max_bytes=size).event_id == "\u00e9\u00e9"
    with pytest.raises(rp.ProtocolError, match=f"limited to {size - 1} bytes"):
        rp.decode_client_event(non_ascii, max_bytes=size - 1)


# --------------------------------------------------------------------------------------------
# Round trips


def test_audio_round_trips_exactly() -> None:
    pcm = os.urandom(4800)
    appended = rp.decode_client_event(
        json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}), max_bytes=MAX
    )
    assert isinstance(appended, rp.InputAudioBufferAppend)
    assert appended.audio == pcm
    delta = sdk_parse_server_event(
        json.loads(rp.encode_server_event(rp.ResponseOutputAudioDelta(response_id="r", item_id="i", audio=pcm)))
    )
    assert base64.b64decode(delta.delta, validate=True) == pcm  # type: ignore[attr-defined]


def test_session_update_round_trip() -> None:
    update = rp.decode_client_event(
        _update(
            {
                "audio": {
                    "input": {
                        "noise_reduction": {"type": "far_field"},
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": 900, "threshold": 0.4},
                    },
                    "output": {"speed": 1.2},
                }
            }
        ),
        max_bytes=MAX,
    )
    assert isinstance(update, rp.SessionUpdate)
    session = rp.apply_session_update(SESSION, update)
    assert session.turn_detection == rp.ServerVad(silence_duration_ms=900, threshold=0.4)
    parsed = sdk_parse_server_event(json.loads(rp.encode_server_event(rp.SessionUpdated(session=session))))
    audio = parsed.session.audio  # type: ignore[attr-defined]
    assert audio.input.noise_reduction.type == "far_field"
    assert audio.input.turn_detection.silence_duration_ms == 900
    assert audio.input.turn_detection.threshold == 0.4
    assert audio.output.speed == 1.2
    assert audio.output.voice == "marin"

    off = rp.decode_client_event(json.dumps(NOISE_REDUCTION_OFF), max_bytes=MAX)
    assert isinstance(off, rp.SessionUpdate)
    assert rp.apply_session_update(session, off).noise_reduction is None
    assert rp.apply_session_update(session, rp.SessionUpdate()) is session


def test_a_candidate_cannot_switch_vad_type() -> None:
    update = rp.SessionUpdate(event_id="u1", turn_detection_type="semantic_vad", eagerness="high")
    with pytest.raises(rp.ProtocolError) as info:
        rp.apply_session_update(SESSION, update)
    assert (info.value.code, info.value.event_id) == ("invalid_value", "u1")
    semantic = rp.SessionConfig(id="s", model="m", voice="v", turn_detection=rp.SemanticVad())
    assert rp.apply_session_update(semantic, update).turn_detection == rp.SemanticVad(eagerness="high")
    with pytest.raises(rp.ProtocolError):
        rp.apply_session_update(semantic, rp.SessionUpdate(turn_detection_type="server_vad", silence_duration_ms=800))


def test_ping_pong_round_trip() -> None:
    ping = rp.decode_client_event(json.dumps(PING), max_bytes=MAX)
    assert isinstance(ping, rp.InterviewPing)
    pong = json.loads(
        rp.encode_server_event(rp.InterviewPong(client_time_ms=ping.client_time_ms, ping_id=ping.ping_id))
    )
    assert (pong["type"], pong["ping_id"], pong["client_time_ms"]) == ("interview.pong", "p1", PING["client_time_ms"])


def test_error_codes_are_stable_and_errors_travel() -> None:
    assert {c.value for c in rp.ProtocolErrorCode} == {
        "invalid_json",
        "invalid_event",
        "unknown_event",
        "missing_required_parameter",
        "invalid_value",
        "invalid_audio",
        "message_too_large",
        "forbidden_session_field",
    }
    exc = rp.ProtocolError(rp.ProtocolErrorCode.INVALID_AUDIO, "bad", param="audio", event_id="e1")
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.code, copy.message, copy.param, copy.event_id) == (exc.code, "bad", "audio", "e1")
    assert str(copy) == "bad"


def test_records_are_frozen() -> None:
    event = rp.InputAudioBufferAppend(audio=b"")
    with pytest.raises(AttributeError):
        event.audio = b"\0\0"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")  # slots


# --------------------------------------------------------------------------------------------
# The real SDK client over a real WebSocket


@pytest.mark.timeout(30)
async def test_the_openai_sdk_client_speaks_it() -> None:
    """`AsyncOpenAI(...).realtime.connect()` sends what we decode and parses what we encode."""
    received: list[str] = []
    all_sent = asyncio.Event()
    expected_messages = 8

    async def realtime(request: web.Request) -> web.WebSocketResponse:
        assert request.query["call_id"] == "sess_1"
        assert request.headers["Authorization"] == "Bearer candidate-token"
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for event in SERVER_SAMPLES:
            await ws.send_str(rp.encode_server_event(event))
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                received.append(message.data)
                if len(received) == expected_messages:
                    all_sent.set()
        return ws

    app = web.Application()
    app.router.add_get("/v1/realtime", realtime)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        client = AsyncOpenAI(
            api_key="candidate-token",
            base_url=f"http://127.0.0.1:{port}/v1",
            websocket_base_url=f"ws://127.0.0.1:{port}/v1",
        )
        async with client.realtime.connect(call_id="sess_1") as conn:
            await conn.input_audio_buffer.append(audio=PCM_B64, event_id="a1")
            await conn.input_audio_buffer.commit()
            await conn.input_audio_buffer.clear(event_id="c1")
            await conn.response.cancel()
            await conn.conversation.item.truncate(item_id="item_3", content_index=0, audio_end_ms=640)
            await conn.session.update(
                session={
                    "type": "realtime",
                    "audio": {
                        "input": {
                            "noise_reduction": {"type": "near_field"},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 700},
                        },
                        "output": {"speed": 1.1},
                    },
                }
            )
            await conn.session.update(session={"type": "realtime", "instructions": "Be lenient."}, event_id="bad")
            await conn.send({"type": "interview.ping", "client_time_ms": 12.5, "ping_id": "p9"})  # type: ignore[arg-type]
            # Any: the SDK types recv() as its own union, which has no interview.* members.
            parsed: list[Any] = [await asyncio.wait_for(conn.recv(), 5) for _ in SERVER_SAMPLES]
            await asyncio.wait_for(all_sent.wait(), 5)
    finally:
        await runner.cleanup()

    # What the SDK parsed is what we meant.
    assert [p.type for p in parsed] == [e.TYPE for e in SERVER_SAMPLES]
    for event, sdk_event in zip(SERVER_SAMPLES, parsed, strict=True):
        assert sdk_event.event_id == event.event_id
        if isinstance(event, rp.ResponseOutputAudioDelta):
            assert base64.b64decode(sdk_event.delta) == event.audio
    pong = parsed[-1]
    assert (pong.type, pong.client_time_ms) == ("interview.pong", 0)

    # What the SDK sent is what we decode.
    decoded: list[rp.ClientEvent | rp.ProtocolError] = []
    for text in received:
        try:
            decoded.append(rp.decode_client_event(text, max_bytes=MAX))
        except rp.ProtocolError as exc:
            decoded.append(exc)
    assert decoded[:6] == [
        rp.InputAudioBufferAppend(audio=PCM, event_id="a1"),
        rp.InputAudioBufferCommit(),
        rp.InputAudioBufferClear(event_id="c1"),
        rp.ResponseCancel(),
        rp.ConversationItemTruncate(item_id="item_3", content_index=0, audio_end_ms=640),
        rp.SessionUpdate(
            noise_reduction="near_field", turn_detection_type="server_vad", silence_duration_ms=700, output_speed=1.1
        ),
    ]
    refused = decoded[6]
    assert isinstance(refused, rp.ProtocolError)
    assert (refused.code, refused.param, refused.event_id) == ("forbidden_session_field", "session.instructions", "bad")
    assert decoded[7] == rp.InterviewPing(client_time_ms=12.5, ping_id="p9")


def test_sdk_parse_event_keeps_our_events() -> None:
    """The SDK's own parser hands our interview.* events to the caller with type and fields intact."""
    for event in SERVER_SAMPLES:
        if event.TYPE.startswith("interview."):
            # parse_event uses no connection state: call it unbound.
            parsed: Any = AsyncRealtimeConnection.parse_event(None, rp.encode_server_event(event))  # type: ignore[arg-type]
            assert parsed.type == event.TYPE
            assert parsed.event_id == event.event_id
