"""Offline speech (actors/speech.py): espeak-ng synthesis, resampling, WebRTC VAD turn detection,
pocketsphinx transcription -- all on the shared test recordings, no network."""

from __future__ import annotations

import hashlib
import random
import wave
from collections.abc import Iterator

import numpy as np
import pytest

from actors.speech import (
    WIRE_SAMPLE_RATE,
    Resampler,
    SpeechStarted,
    SpeechStopped,
    Synthesizer,
    Transcriber,
    UnknownVoiceError,
    VadEvent,
    VoiceActivity,
    espeak_voice_for,
    resample_pcm16,
)
from tests.conftest import SHARED

AUDIO = SHARED / "audio"

QUESTION = "Tell me about a project you are proud of, and what your role in it was."
TOLERANCE_MS = 300  # VAD boundaries vs an energy-based reference


def _wav(name: str) -> bytes:
    path = AUDIO / name
    if not path.exists():
        pytest.skip(f"test audio {path} not available")
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (WIRE_SAMPLE_RATE, 1, 2)
        return w.readframes(w.getnframes())


def _energy_turns(pcm: bytes, *, gap_ms: int = 500, threshold: float = 100.0) -> list[tuple[int, int]]:
    """Reference turns from frame energy (RMS over 20 ms > threshold), gaps shorter than gap_ms merged."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    frames = x[: x.size // 480 * 480].reshape(-1, 480)
    active = np.flatnonzero(np.sqrt((frames**2).mean(axis=1)) > threshold)
    turns: list[tuple[int, int]] = []
    for i in active:
        start, end = int(i) * 20, int(i) * 20 + 20
        if turns and start - turns[-1][1] < gap_ms:
            turns[-1] = (turns[-1][0], end)
        else:
            turns.append((start, end))
    return turns


def _turns(events: list[VadEvent]) -> list[tuple[int, int]]:
    """Check events alternate started/stopped and pair up; returns (start_ms, end_ms) per turn."""
    turns: list[tuple[int, int]] = []
    for i, event in enumerate(events):
        if i % 2 == 0:
            assert isinstance(event, SpeechStarted), events
            assert event.detected_ms >= event.start_ms
        else:
            assert isinstance(event, SpeechStopped), events
            started = events[i - 1]
            assert event.start_ms == started.start_ms
            assert event.start_ms < event.end_ms <= event.detected_ms
            turns.append((event.start_ms, event.end_ms))
    assert len(events) % 2 == 0, events
    return turns


def _detect(pcm: bytes, chunks: Iterator[int] | None = None, **kwargs: int) -> list[VadEvent]:
    vad = VoiceActivity(**kwargs)
    events: list[VadEvent] = []
    if chunks is None:
        sizes: Iterator[int] = iter(lambda: 960, None)  # 20 ms at 24 kHz
    else:
        sizes = chunks
    i = 0
    while i < len(pcm):
        n = next(sizes)
        events += vad.feed(pcm[i : i + n])
        i += n
    return events + vad.flush()


def _odd_sizes(seed: int) -> Iterator[int]:
    rng = random.Random(seed)
    while True:
        yield rng.choice((1, 3, 7, 333, 959, 961, 1441, 4099, rng.randint(1, 5000)))


# ------------------------------------------------------------------------------------------------
# Synthesis
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth() -> Synthesizer:
    if not Synthesizer.available():
        pytest.skip("espeakng-loader wheel not installed")
    return Synthesizer()


@pytest.fixture(scope="module")
def question_pcm(synth: Synthesizer) -> bytes:
    return synth.synthesize(QUESTION)


def test_synthesis_is_plausible_24khz_speech(question_pcm: bytes) -> None:
    assert len(question_pcm) % 2 == 0
    seconds = len(question_pcm) / 2 / WIRE_SAMPLE_RATE
    assert 1.0 < seconds < 6.0, seconds
    x = np.frombuffer(question_pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt((x**2).mean()))
    assert rms > 500, rms  # real signal, not near-silence
    # espeak renders at 22,050 Hz: once resampled to 24 kHz, nothing above ~11 kHz. Raw 22.05 kHz
    # samples mislabelled as 24 kHz would instead reach up to 12 kHz.
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, d=1 / WIRE_SAMPLE_RATE)
    assert spectrum[freqs > 11_200].sum() < 1e-4 * spectrum.sum()


def test_synthesis_is_deterministic(synth: Synthesizer, question_pcm: bytes) -> None:
    # Other utterances in between (other voice, other rate) must not change the result.
    synth.synthesize("Guten Tag, wie geht es Ihnen?", voice="de-DE")
    synth.synthesize("Quick one.", rate_wpm=300)
    again = synth.synthesize(QUESTION)
    assert hashlib.sha256(again).digest() == hashlib.sha256(question_pcm).digest()


def test_synthesis_rate_voice_and_edge_cases(synth: Synthesizer, question_pcm: bytes) -> None:
    fast = synth.synthesize(QUESTION, rate_wpm=300)
    assert 0 < len(fast) < 0.8 * len(question_pcm)
    british = synth.synthesize(QUESTION, voice="en-GB")
    assert british and british != question_pcm
    assert synth.synthesize("   ") == b""
    with pytest.raises(ValueError):
        synth.synthesize(QUESTION, rate_wpm=20)
    with pytest.raises(UnknownVoiceError):
        synth.synthesize(QUESTION, voice="xx-YY")


def test_language_tags_map_to_espeak_voices(synth: Synthesizer) -> None:
    assert espeak_voice_for("en-US") == "gmw/en-US"
    assert espeak_voice_for("en_us") == "gmw/en-US"
    assert espeak_voice_for("en-GB") == "gmw/en"
    assert espeak_voice_for("de-DE") == "gmw/de"
    assert espeak_voice_for("pt-BR") == "roa/pt-BR"
    assert espeak_voice_for("gmw/en-US") == "gmw/en-US"
    with pytest.raises(UnknownVoiceError):
        espeak_voice_for("tlh-Latn")


# ------------------------------------------------------------------------------------------------
# Resampling
# ------------------------------------------------------------------------------------------------


def test_streaming_resampler_is_exact_and_chunking_invariant() -> None:
    pcm = _wav("candidate_intro.wav")[: 2 * 24_000 * 2]  # 2 s
    one_shot = Resampler(24_000, 16_000)
    whole = one_shot.process(pcm) + one_shot.flush()
    assert len(whole) == len(pcm) * 2 // 3
    frame = Resampler(24_000, 16_000).process(pcm[:960])
    assert len(frame) == 640  # 20 ms -> exactly 320 samples, nothing held back
    x = np.frombuffer(pcm[:960], dtype="<i2").astype(np.int32)
    y = np.frombuffer(frame, dtype="<i2")
    assert (y[0::2] == x[0::3]).all()
    assert (y[1::2] == (x[1::3] + x[2::3] + 1) >> 1).all()
    for src, dst in ((24_000, 16_000), (22_050, 24_000), (24_000, 48_000)):
        ref = Resampler(src, dst)
        expected = ref.process(pcm) + ref.flush()
        streamed = Resampler(src, dst)
        sizes, out, i = _odd_sizes(src + dst), [], 0
        while i < len(pcm):
            n = next(sizes)
            out.append(streamed.process(pcm[i : i + n]))
            i += n
        out.append(streamed.flush())
        assert b"".join(out) == expected, (src, dst)


def test_sinc_resampler_keeps_tones_and_length() -> None:
    n = 22_050
    tone = (8000 * np.sin(2 * np.pi * 1000 * np.arange(n) / 22_050)).round().astype("<i2")
    out = np.frombuffer(resample_pcm16(tone.tobytes(), 22_050, 24_000), dtype="<i2").astype(np.float64)
    assert out.size == 24_000
    ref = 8000 * np.sin(2 * np.pi * 1000 * np.arange(out.size) / 24_000)
    err = out[100:-100] - ref[100:-100]
    assert np.sqrt((err**2).mean()) < 8000 * 1e-3  # better than -60 dB
    # A 10 kHz tone cannot exist at 16 kHz: it must be filtered out, not aliased to 6 kHz.
    high = (8000 * np.sin(2 * np.pi * 10_000 * np.arange(24_000) / 24_000)).round().astype("<i2")
    aliased = np.frombuffer(resample_pcm16(high.tobytes(), 24_000, 16_000), dtype="<i2")
    assert np.abs(aliased[100:-100]).max() < 80


# ------------------------------------------------------------------------------------------------
# Voice activity
# ------------------------------------------------------------------------------------------------


def test_vad_one_turn_in_intro() -> None:
    pcm = _wav("candidate_intro.wav")
    turns = _turns(_detect(pcm))
    reference = _energy_turns(pcm)
    assert len(turns) == len(reference) == 1, (turns, reference)
    (start, end), (ref_start, ref_end) = turns[0], reference[0]
    assert abs(start - ref_start) <= TOLERANCE_MS and abs(end - ref_end) <= TOLERANCE_MS, (turns, reference)


def test_vad_two_turns_any_chunking() -> None:
    pcm = _wav("candidate_two_turns.wav")
    framed = _detect(pcm)
    turns = _turns(framed)
    reference = _energy_turns(pcm)
    assert len(turns) == len(reference) == 2, (turns, reference)
    for (start, end), (ref_start, ref_end) in zip(turns, reference, strict=True):
        assert abs(start - ref_start) <= TOLERANCE_MS and abs(end - ref_end) <= TOLERANCE_MS, (turns, reference)
    # The first turn is closed by silence inside the stream, 500 ms after its last voiced frame.
    first_stop = framed[1]
    assert isinstance(first_stop, SpeechStopped) and first_stop.detected_ms == first_stop.end_ms + 500
    assert _detect(pcm, _odd_sizes(1)) == framed
    assert _detect(pcm, iter(lambda: 997, None)) == framed


def test_vad_ignores_silence_and_clicks() -> None:
    silence = _wav("silence_3s.wav")
    assert _detect(silence) == []
    rng = np.random.default_rng(7)
    x = np.zeros(3 * WIRE_SAMPLE_RATE, dtype=np.int16)
    for at_ms in (500, 1500, 2500):  # 40 ms bursts of loud noise, a second apart
        i = at_ms * 24
        x[i : i + 960] = rng.integers(-12_000, 12_000, 960, dtype=np.int16)
    assert _detect(x.tobytes()) == []
    # With no minimum speech duration to speak of, the same bursts count.
    assert _detect(x.tobytes(), min_speech_ms=20, silence_ms=200)


def test_vad_hears_synthesized_question(question_pcm: bytes) -> None:
    pad = bytes(2 * WIRE_SAMPLE_RATE)  # 1 s of silence each side
    turns = _turns(_detect(pad + question_pcm + pad))
    assert len(turns) == 1, turns
    seconds = len(question_pcm) / 2 / WIRE_SAMPLE_RATE * 1000
    start, end = turns[0]
    assert 1000 - TOLERANCE_MS <= start <= 1000 + TOLERANCE_MS
    assert end - start > 0.8 * seconds


def test_vad_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        VoiceActivity(frame_ms=25)
    with pytest.raises(ValueError):
        VoiceActivity(aggressiveness=4)
    with pytest.raises(ValueError):
        VoiceActivity(silence_ms=5)


# ------------------------------------------------------------------------------------------------
# Transcription (optional engine)
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    pytest.importorskip("pocketsphinx", reason="transcription is optional")
    Transcriber.preload()  # the model is shared by the whole process
    return Transcriber()


def test_transcriber_hears_words(transcriber: Transcriber) -> None:
    text = transcriber.transcribe(_wav("candidate_intro.wav"))
    words = set(text.split())
    assert "thanks" in words, text
    assert len(words & {"hi", "having", "five", "years", "experience", "building"}) >= 3, text
    assert Transcriber.load_seconds() is not None


def test_transcriber_is_repeatable(transcriber: Transcriber, question_pcm: bytes) -> None:
    first = transcriber.transcribe(question_pcm)
    assert first
    transcriber.transcribe(_wav("silence_3s.wav")[: 24_000 * 2])
    assert transcriber.transcribe(question_pcm) == first
    assert transcriber.transcribe(b"") == ""
