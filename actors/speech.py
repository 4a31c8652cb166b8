"""Offline speech for the embedded interviewer: speak, hear, (optionally) transcribe.

Everything here comes from pip wheels and runs without network or run-time downloads.
Audio on the wire is PCM16 little-endian mono at 24 kHz (the Realtime API's format).

* :class:`Synthesizer` -- text to PCM16 24 kHz through libespeak-ng from the ``espeakng-loader``
  wheel (ctypes, synchronous mode, synth callback). espeak produces 22,050 Hz; we resample with
  :func:`resample_pcm16` (windowed sinc).
* :class:`Resampler` -- streaming, stateful linear-interpolation resampler (24 kHz -> 16 kHz for
  the VAD: exact 3:2, ~3 us per 20 ms frame).
* :class:`VoiceActivity` -- streaming turn detector on WebRTC's VAD (``webrtcvad-wheels``): speech
  started / speech stopped events with offsets in ms from the start of the stream.
* :class:`Transcriber` -- optional whole-utterance recognition with the ``pocketsphinx`` wheel's
  US English model, loaded once per process on first use.

Resampling choices (numpy only; ``audioop`` is gone in 3.13):

* Streaming 24 kHz -> 16 kHz (VAD, and the recogniser's input) uses linear interpolation with
  integer arithmetic: output sample ``2m`` is input ``3m`` and ``2m+1`` is the mean of inputs
  ``3m+1`` and ``3m+2``. No anti-alias filter (a 1 kHz tone comes out ~-44 dB off; 8-12 kHz
  content folds down, partly attenuated). WebRTC's VAD band-limits its input to 4 kHz itself and
  speech has little energy above 8 kHz, so this is immaterial for detecting speech, at ~3 us per
  frame instead of ~15 us for a FIR in numpy. pocketsphinx even recognised more words after it
  than after the sinc resampler (see :class:`Transcriber`).
* One-shot resampling (TTS output 22,050 -> 24,000 Hz) uses a Kaiser-windowed sinc polyphase
  filter (16 zero crossings, beta 8, cut-off at 95 % of the lower Nyquist): tones up to 6 kHz come
  out within -80 dB, aliases are rejected, at ~1-2 ms per second of audio.

Run ``python -m actors.speech`` for a benchmark printout.
"""

from __future__ import annotations

import ctypes
import functools
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "WIRE_SAMPLE_RATE",
    "Resampler",
    "SpeechEngineUnavailable",
    "SpeechError",
    "SpeechStarted",
    "SpeechStopped",
    "SynthesisError",
    "Synthesizer",
    "Transcriber",
    "UnknownVoiceError",
    "VadEvent",
    "VoiceActivity",
    "benchmark",
    "espeak_voice_for",
    "resample_pcm16",
]

WIRE_SAMPLE_RATE: Final = 24_000
"""Sample rate of audio on the wire (PCM16 LE mono)."""

_PCM16: Final = np.dtype("<i2")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class SpeechError(RuntimeError):
    """Base class for errors raised by this module."""


class SpeechEngineUnavailable(SpeechError):
    """A speech engine (espeak-ng, WebRTC VAD, pocketsphinx) cannot be imported or loaded."""


class SynthesisError(SpeechError):
    """espeak-ng refused to synthesise (bad parameter, internal error)."""


class UnknownVoiceError(SpeechError, ValueError):
    """No espeak-ng voice matches the requested language / voice name."""


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


class Resampler:
    """Streaming linear-interpolation resampler for PCM16 mono, e.g. 24 kHz -> 16 kHz.

    Feed bytes of any length (even odd byte counts) to :meth:`process`; the output is identical
    to resampling the concatenated stream in one go. Output sample ``n`` is the linear
    interpolation of the input at position ``n * src_rate / dst_rate`` (integer arithmetic,
    rounded half up), so the result is exact and deterministic. For 24 kHz -> 16 kHz a 20 ms
    frame of 480 samples gives exactly 320 samples and no state is carried between frames.

    Not thread-safe: one instance per stream.
    """

    __slots__ = ("_down", "_held", "_lookahead", "_odd", "_phases", "_up", "dst_rate", "src_rate")

    def __init__(self, src_rate: int = WIRE_SAMPLE_RATE, dst_rate: int = 16_000) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError("sample rates must be positive")
        self.src_rate = src_rate
        self.dst_rate = dst_rate
        g = math.gcd(src_rate, dst_rate)
        self._down = src_rate // g  # input samples per block
        self._up = dst_rate // g  # output samples per block
        # Per output phase k of a block: (offset of the left input sample, weight numerator of the right one).
        self._phases = tuple(divmod(k * self._down, self._up) for k in range(self._up))
        self._lookahead = 1 if any(off + 1 >= self._down and r for off, r in self._phases) else 0
        self._held = b""  # whole samples not yet consumed (less than a block + lookahead)
        self._odd = b""  # a dangling byte (half a sample)

    def reset(self) -> None:
        """Forget buffered input (start of a new stream)."""
        self._held = b""
        self._odd = b""

    def process(self, pcm: bytes) -> bytes:
        """Resample the next chunk of the stream; returns as many output samples as are determined."""
        if self._odd or len(pcm) & 1:
            joined = self._odd + pcm
            cut = len(joined) & ~1
            pcm, self._odd = joined[:cut], joined[cut:]
        if self._held:
            pcm = self._held + pcm
        x = np.frombuffer(pcm, dtype=_PCM16)
        blocks = (x.size - self._lookahead) // self._down
        if blocks <= 0:
            self._held = pcm
            return b""
        used = blocks * self._down * 2
        self._held = pcm[used:] if used < len(pcm) else b""
        return self._blocks(x, blocks).tobytes()

    def flush(self) -> bytes:
        """End of stream: emit the outputs still owed for buffered input (last sample held)."""
        held, self._held, self._odd = self._held, b"", b""
        x = np.frombuffer(held, dtype=_PCM16)
        if x.size == 0:
            return b""
        n_out = -(-x.size * self._up // self._down)  # ceil
        blocks = -(-n_out // self._up)
        padded = np.full(blocks * self._down + 1, x[-1], dtype=_PCM16)
        padded[: x.size] = x
        return self._blocks(padded, blocks)[:n_out].tobytes()

    def _blocks(self, x: npt.NDArray[np.int16], blocks: int) -> npt.NDArray[np.int16]:
        up, down = self._up, self._down
        span = blocks * down
        out = np.empty(blocks * up, dtype=_PCM16)
        for k, (off, r) in enumerate(self._phases):
            left = x[off : off + span : down]
            if r == 0:
                out[k::up] = left
                continue
            right = x[off + 1 : off + 1 + span : down]
            if 2 * r == up:  # midpoint (the 3:2 case): (a + b + 1) >> 1
                acc = np.add(left, right, dtype=np.int32)
                acc += 1
                acc >>= 1
            else:
                acc = np.multiply(left, up - r, dtype=np.int32)
                acc += np.multiply(right, r, dtype=np.int32)
                acc += up // 2
                acc //= up
            out[k::up] = acc
        return out


@functools.lru_cache(maxsize=8)
def _sinc_table(up: int, down: int) -> tuple[npt.NDArray[np.float64], int]:
    """Polyphase Kaiser-windowed sinc filter: one row of taps per output phase (``up`` rows)."""
    zero_crossings, beta, rolloff = 16, 8.0, 0.95
    cutoff = min(1.0, up / down) * rolloff  # relative to the input Nyquist frequency
    half = zero_crossings / cutoff  # half-width, in input samples
    half_taps = math.ceil(half)
    rel = np.arange(-half_taps + 1, half_taps + 1, dtype=np.float64)  # tap j sits at input i + rel
    frac = np.arange(up, dtype=np.float64)[:, None] / up  # output lies at input i + frac
    u = frac - rel[None, :]  # distance from output to tap, in input samples
    window = np.kaiser(2049, beta)
    w = np.interp(u / half, np.linspace(-1.0, 1.0, window.size), window, left=0.0, right=0.0)
    taps = cutoff * np.sinc(cutoff * u) * w
    taps /= taps.sum(axis=1, keepdims=True)  # unity gain at DC for every phase
    return taps, half_taps


def resample_pcm16(pcm: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample a whole PCM16 mono buffer with a windowed-sinc polyphase filter.

    Higher quality than :class:`Resampler` (band-limited, ~70-80 dB rejection) at a few ms per
    second of audio; not for per-frame streaming. Output length is ``ceil(n * dst / src)``.
    Deterministic: pure numpy, no BLAS.
    """
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError("sample rates must be positive")
    if len(pcm) & 1:
        raise ValueError("PCM16 buffer has an odd number of bytes")
    if src_rate == dst_rate or not pcm:
        return bytes(pcm)
    g = math.gcd(src_rate, dst_rate)
    up, down = dst_rate // g, src_rate // g
    taps, half_taps = _sinc_table(up, down)
    x = np.frombuffer(pcm, dtype=_PCM16).astype(np.float64)
    n_in = x.size
    n_out = -(-n_in * up // down)
    width = taps.shape[1]
    pad = width + 1
    xpad = np.zeros(n_in + 2 * pad, dtype=np.float64)
    xpad[pad : pad + n_in] = x
    windows = np.lib.stride_tricks.sliding_window_view(xpad, width)
    y = np.empty(n_out, dtype=np.float64)
    for k in range(min(up, n_out)):
        i0, r = divmod(k * down, up)
        count = len(range(k, n_out, up))
        first = i0 - half_taps + 1 + pad  # window start for output k, then every `down` inputs
        rows = windows[first : first + (count - 1) * down + 1 : down]
        y[k::up] = np.einsum("ij,j->i", rows, taps[r])
    np.rint(y, out=y)
    np.clip(y, -32768, 32767, out=y)
    return y.astype(_PCM16).tobytes()


# --------------------------------------------------------------------------------------------
# Speaking: espeak-ng through ctypes
# --------------------------------------------------------------------------------------------

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS: Final = 2
_ESPEAK_INITIALIZE_DONT_EXIT: Final = 0x8000
_ESPEAK_RATE: Final = 1
_POS_CHARACTER: Final = 1
_ESPEAK_CHARS_UTF8: Final = 1
_EE_OK: Final = 0

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

# espeak-ng keeps its whole state in library globals: one synthesis at a time per process,
# across all Synthesizer instances.
_ESPEAK_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _espeak_paths() -> tuple[str, str]:
    """(libespeak-ng path, espeak-ng-data path) from the espeakng-loader wheel."""
    try:
        import espeakng_loader  # type: ignore[import-untyped]
    except ImportError as exc:
        raise SpeechEngineUnavailable(
            "espeak-ng is unavailable: install the 'espeakng-loader' wheel (it ships libespeak-ng and its data)"
        ) from exc
    try:
        lib_path = str(espeakng_loader.get_library_path())
        data_path = str(espeakng_loader.get_data_path())
    except Exception as exc:  # the loader raises RuntimeError when its data directory is missing
        raise SpeechEngineUnavailable(f"espeakng-loader wheel is incomplete: {exc}") from exc
    if not Path(lib_path).is_file():
        raise SpeechEngineUnavailable(f"libespeak-ng not found at {lib_path}")
    return lib_path, data_path


@functools.lru_cache(maxsize=1)
def _espeak_voice_table() -> tuple[dict[str, str], dict[str, str]]:
    """Parse espeak-ng-data/lang: ({language tag: identifier}, {file name: identifier}), lower-case keys."""
    _, data_path = _espeak_paths()
    root = Path(data_path) / "lang"
    by_language: dict[str, tuple[int, str]] = {}
    by_name: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        identifier = path.relative_to(root).as_posix()
        by_name.setdefault(path.name.lower(), identifier)
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "language":
                priority = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 5
                tag = parts[1].lower()
                best = by_language.get(tag)
                if best is None or (priority, identifier) < best:
                    by_language[tag] = (priority, identifier)
    return {tag: ident for tag, (_, ident) in by_language.items()}, by_name


def espeak_voice_for(language: str) -> str:
    """Map a BCP 47 tag (``en-US``, ``en-GB``, ``de-DE``) or an espeak voice name to an espeak voice identifier.

    Exact language match first (espeak's own ``language`` lines, lowest priority number wins),
    then the voice file name, then the tag with its last subtag dropped (``de-DE`` -> ``de``).
    Examples: ``en-US`` -> ``gmw/en-US``, ``en-GB`` -> ``gmw/en``, ``de-DE`` -> ``gmw/de``,
    ``pt-BR`` -> ``roa/pt-BR``. Raises :class:`UnknownVoiceError` if nothing matches.
    """
    tag = language.strip().replace("_", "-").lower()
    if not tag:
        raise UnknownVoiceError("empty language tag")
    by_language, by_name = _espeak_voice_table()
    if "/" in tag:  # already an identifier such as gmw/en-US
        for ident in (*by_language.values(), *by_name.values()):
            if ident.lower() == tag:
                return ident
        raise UnknownVoiceError(f"no espeak-ng voice {language!r}")
    parts = tag.split("-")
    while parts:
        candidate = "-".join(parts)
        if candidate in by_language:
            return by_language[candidate]
        if candidate in by_name:
            return by_name[candidate]
        parts.pop()
    raise UnknownVoiceError(f"no espeak-ng voice for language {language!r}")


class Synthesizer:
    """Text to speech: PCM16 LE mono at 24 kHz, via libespeak-ng from the ``espeakng-loader`` wheel.

    Deterministic: the same (text, voice, rate) gives the same bytes, whatever was synthesised
    before. espeak-ng carries hidden state from one utterance to the next (pitch flutter phase,
    waveform phase, AGC, random breath noise) that no API call resets, so every call loads a fresh
    instance of the library (dlopen, initialise, synthesise, terminate, dlclose): about 1 ms to
    load and 3-10 ms to load the voice's dictionary, on top of the synthesis itself (espeak-ng
    leaks ~2 KB per voice load, so ~2 KB per call; cache repeated questions upstream).

    Thread safety: espeak-ng is process-global state, so all instances share one lock and
    synthesis is serialised per process (~10-30 ms per question). Call from a worker thread
    (``asyncio.to_thread``) to keep an event loop responsive. If something else in the process
    keeps libespeak-ng loaded, dlclose cannot unload it and outputs are no longer guaranteed
    identical across calls (still valid speech).

    The library is located lazily on the first call; :class:`SpeechEngineUnavailable` if the
    wheel is missing or the library cannot be loaded.
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._callback = _SynthCallback(self._on_samples)

    def _on_samples(self, wav: Any, numsamples: int, _events: Any) -> int:
        if wav and numsamples > 0:
            self._chunks.append(ctypes.string_at(wav, numsamples * 2))
        return 0  # 0 = continue

    @staticmethod
    def available() -> bool:
        """True if the espeak-ng library and its data can be found (does not load the library)."""
        try:
            _espeak_paths()
        except SpeechEngineUnavailable:
            return False
        return True

    def synthesize(self, text: str, *, voice: str = "en-us", rate_wpm: int | None = None) -> bytes:
        """Speak ``text``; returns PCM16 LE mono at 24 kHz.

        ``voice``: BCP 47 tag (``en-US``, ``de-DE``) or espeak voice name / identifier, resolved
        with :func:`espeak_voice_for`. ``rate_wpm``: speaking rate, 80-450 words per minute
        (espeak's default is 175). Empty or whitespace-only text gives ``b""``.
        """
        if rate_wpm is not None and not 80 <= rate_wpm <= 450:
            raise ValueError(f"rate_wpm must be within 80..450, got {rate_wpm}")
        text = text.replace("\x00", " ")
        if not text.strip():
            return b""
        identifier = espeak_voice_for(voice)
        raw, rate = self._synthesize_native(text, identifier, rate_wpm)
        return resample_pcm16(raw, rate, WIRE_SAMPLE_RATE)

    def _synthesize_native(self, text: str, identifier: str, rate_wpm: int | None) -> tuple[bytes, int]:
        lib_path, data_path = _espeak_paths()
        encoded = text.encode("utf-8") + b"\x00"
        with _ESPEAK_LOCK:
            try:
                lib = ctypes.CDLL(lib_path)
            except OSError as exc:
                raise SpeechEngineUnavailable(f"cannot load libespeak-ng from {lib_path}: {exc}") from exc
            try:
                lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
                lib.espeak_Initialize.restype = ctypes.c_int
                lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
                lib.espeak_SetVoiceByName.restype = ctypes.c_int
                lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
                lib.espeak_SetParameter.restype = ctypes.c_int
                lib.espeak_Synth.argtypes = [
                    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                    ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
                ]  # fmt: skip
                lib.espeak_Synth.restype = ctypes.c_int
                rate = lib.espeak_Initialize(
                    _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _ESPEAK_INITIALIZE_DONT_EXIT
                )
                if rate <= 0:
                    raise SpeechEngineUnavailable(f"espeak_Initialize failed ({rate}) with data at {data_path}")
                try:
                    lib.espeak_SetSynthCallback(self._callback)
                    status = lib.espeak_SetVoiceByName(identifier.encode())
                    if status != _EE_OK:
                        raise UnknownVoiceError(f"espeak-ng could not load voice {identifier!r} (status {status})")
                    if rate_wpm is not None:
                        status = lib.espeak_SetParameter(_ESPEAK_RATE, rate_wpm, 0)
                        if status != _EE_OK:
                            raise SynthesisError(f"espeak_SetParameter(rate={rate_wpm}) failed (status {status})")
                    self._chunks = []
                    status = lib.espeak_Synth(
                        encoded, len(encoded), 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None
                    )
                    if status != _EE_OK:
                        raise SynthesisError(f"espeak_Synth failed (status {status})")
                    raw = b"".join(self._chunks)
                finally:
                    self._chunks = []
                    lib.espeak_Terminate()
            finally:
                _dlclose(lib)
        return raw, int(rate)


def _dlclose(lib: ctypes.CDLL) -> None:
    import _ctypes  # CPython's own module; dlclose is POSIX-only

    close = getattr(_ctypes, "dlclose", None)
    if close is not None:
        close(lib._handle)


# --------------------------------------------------------------------------------------------
# Hearing: streaming turn detection on WebRTC VAD
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Speech began at ``start_ms``; the detector committed at ``detected_ms`` (both from stream start)."""

    start_ms: int
    detected_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """A turn of speech ``start_ms`` .. ``end_ms`` ended; known at ``detected_ms`` (end + silence, or stream end)."""

    start_ms: int
    end_ms: int
    detected_ms: int


VadEvent = SpeechStarted | SpeechStopped

_VAD_RATES: Final = (8_000, 16_000, 32_000, 48_000)


def _load_webrtcvad() -> Any:
    try:
        import webrtcvad  # type: ignore[import-untyped]
    except ImportError as exc:
        raise SpeechEngineUnavailable("voice activity detection needs the 'webrtcvad-wheels' wheel") from exc
    return webrtcvad


class VoiceActivity:
    """Streaming turn detector: feed PCM16 mono (24 kHz by default) in chunks of any size.

    Each ``frame_ms`` frame is classified by WebRTC's VAD (after resampling to 16 kHz when the
    input rate is not one the VAD accepts). A turn *starts* once ``min_speech_ms`` of voiced
    frames have accumulated without an unvoiced gap of ``onset_gap_ms`` (shorter bursts --
    clicks, a cough -- are ignored); the :class:`SpeechStarted` event carries the time of the
    first voiced frame. A turn *stops* after ``silence_ms`` of unvoiced frames
    (:class:`SpeechStopped` carries the end of the last voiced frame), like the Realtime API's
    server VAD (default 500 ms). ``aggressiveness`` is WebRTC's mode, 0 (most speech kept) to 3
    (most noise rejected).

    Times are integers in ms from the start of the stream (the last :meth:`reset`), counted in
    whole frames. Results are deterministic and independent of how the stream is chunked.
    Not thread-safe: one instance per audio stream.
    """

    def __init__(
        self,
        *,
        sample_rate: int = WIRE_SAMPLE_RATE,
        aggressiveness: int = 2,
        silence_ms: int = 500,
        min_speech_ms: int = 160,
        onset_gap_ms: int = 100,
        frame_ms: int = 20,
    ) -> None:
        if frame_ms not in (10, 20, 30):
            raise ValueError("frame_ms must be 10, 20 or 30 (WebRTC VAD frame sizes)")
        if not 0 <= aggressiveness <= 3:
            raise ValueError("aggressiveness must be within 0..3")
        for name, value in (
            ("silence_ms", silence_ms),
            ("min_speech_ms", min_speech_ms),
            ("onset_gap_ms", onset_gap_ms),
        ):
            if value < frame_ms:
                raise ValueError(f"{name} must be at least frame_ms ({frame_ms} ms), got {value}")
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self.sample_rate = sample_rate
        self.aggressiveness = aggressiveness
        self.silence_ms = silence_ms
        self.min_speech_ms = min_speech_ms
        self.onset_gap_ms = onset_gap_ms
        self.frame_ms = frame_ms
        self._vad_rate = sample_rate if sample_rate in _VAD_RATES else 16_000
        self._resampler = None if self._vad_rate == sample_rate else Resampler(sample_rate, self._vad_rate)
        self._frame_bytes = self._vad_rate * frame_ms // 1000 * 2
        self.reset()

    def reset(self) -> None:
        """Start a new stream at time 0 (drops buffered audio and any open turn, emits nothing)."""
        if self._resampler is not None:
            self._resampler.reset()
        self._vad = _load_webrtcvad().Vad(self.aggressiveness)  # WebRTC VAD adapts its noise model
        self._is_speech = self._vad.is_speech
        self._pending = bytearray()
        self._frames = 0
        self._speaking = False
        self._onset_ms: int | None = None  # first voiced frame of the candidate / current turn
        self._voiced_ms = 0  # voiced time accumulated by the candidate
        self._last_voiced_end_ms = 0

    @property
    def speaking(self) -> bool:
        """True between a SpeechStarted and its SpeechStopped."""
        return self._speaking

    @property
    def position_ms(self) -> int:
        """Audio classified so far, in ms (whole frames)."""
        return self._frames * self.frame_ms

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Process the next chunk of the stream; returns the events it completed, in order."""
        if self._resampler is not None:
            pcm = self._resampler.process(pcm)
        pending = self._pending
        pending += pcm
        size = self._frame_bytes
        usable = len(pending) - len(pending) % size
        if usable == 0:
            return []
        events: list[VadEvent] = []
        view = memoryview(pending)
        try:
            for start in range(0, usable, size):
                self._step(self._is_speech(view[start : start + size], self._vad_rate), events)
        finally:
            view.release()
        # A new buffer rather than resizing this one: a frame object kept alive elsewhere (a
        # traceback, a profiler) may still hold a slice of it, and resizing would then raise.
        self._pending = pending[usable:]
        return events

    def feed_many(self, chunks: Iterable[bytes]) -> list[VadEvent]:
        """Feed several chunks; returns all their events."""
        events: list[VadEvent] = []
        for chunk in chunks:
            events.extend(self.feed(chunk))
        return events

    def flush(self) -> list[VadEvent]:
        """End of stream: close an open turn (its ``detected_ms`` is the stream end), then :meth:`reset`.

        A trailing partial frame (< ``frame_ms``) is not classified.
        """
        events: list[VadEvent] = []
        if self._speaking and self._onset_ms is not None:
            events.append(SpeechStopped(self._onset_ms, self._last_voiced_end_ms, self.position_ms))
        self.reset()
        return events

    def _step(self, voiced: bool, events: list[VadEvent]) -> None:
        frame_ms = self.frame_ms
        start = self._frames * frame_ms
        end = start + frame_ms
        self._frames += 1
        if self._speaking:
            if voiced:
                self._last_voiced_end_ms = end
            elif end - self._last_voiced_end_ms >= self.silence_ms:
                assert self._onset_ms is not None
                events.append(SpeechStopped(self._onset_ms, self._last_voiced_end_ms, end))
                self._speaking = False
                self._onset_ms = None
            return
        if voiced:
            if self._onset_ms is None:
                self._onset_ms = start
                self._voiced_ms = 0
            self._voiced_ms += frame_ms
            self._last_voiced_end_ms = end
            if self._voiced_ms >= self.min_speech_ms:
                self._speaking = True
                events.append(SpeechStarted(self._onset_ms, end))
        elif self._onset_ms is not None and end - self._last_voiced_end_ms >= self.onset_gap_ms:
            self._onset_ms = None  # a click, not speech


# --------------------------------------------------------------------------------------------
# Transcribing: pocketsphinx (optional)
# --------------------------------------------------------------------------------------------

_PS_RATE: Final = 16_000
_PS_LOCK = threading.Lock()
_ps_decoder: Any = None
_ps_load_seconds: float | None = None


def _pocketsphinx_decoder() -> Any:
    """The process-wide decoder, loaded on first use. Caller holds _PS_LOCK."""
    global _ps_decoder, _ps_load_seconds
    if _ps_decoder is None:
        try:
            import pocketsphinx  # type: ignore[import-untyped]
        except ImportError as exc:
            raise SpeechEngineUnavailable("transcription needs the 'pocketsphinx' wheel") from exc
        started = time.perf_counter()
        try:
            # fwdflat=False: the flat-lexicon second pass keeps state between utterances (the same audio
            # decoded twice gave different words); without it results are repeatable and decoding is faster.
            decoder = pocketsphinx.Decoder(samprate=_PS_RATE, loglevel="FATAL", fwdflat=False)
        except (RuntimeError, ValueError) as exc:
            raise SpeechEngineUnavailable(f"pocketsphinx could not load its model: {exc}") from exc
        _ps_load_seconds = time.perf_counter() - started
        _ps_decoder = decoder
    return _ps_decoder


class Transcriber:
    """Optional offline recognition of whole utterances (pocketsphinx US English model from the wheel).

    The model (~0.3-0.5 s to load, ~40 MB of wheel) is loaded once per process, on the first
    :meth:`transcribe` or :meth:`preload`, and shared by all instances. The decoder is not
    re-entrant: calls are serialised by a process-wide lock, and pocketsphinx holds the GIL while
    decoding (measure: ~0.2-0.6x real time, so a fifth of a core or more per speaking candidate).
    Recognition is rough and US English only: on espeak-voiced interview sentences about a quarter of
    the words come out right (``candidate_intro.wav`` -> "hi thanks for having me ... five years on the
    experience building ..."). Same audio, same text: the model's flat-lexicon second pass, which kept
    state between utterances, is off.
    """

    def __init__(self, *, sample_rate: int = WIRE_SAMPLE_RATE) -> None:
        if sample_rate <= 0:
            raise ValueError("sample_rate must be positive")
        self.sample_rate = sample_rate

    @staticmethod
    def preload() -> float:
        """Load the model now if needed; returns the load time in seconds (of the first load)."""
        with _PS_LOCK:
            _pocketsphinx_decoder()
        assert _ps_load_seconds is not None
        return _ps_load_seconds

    @staticmethod
    def available() -> bool:
        """True if the pocketsphinx wheel is importable (does not load the model)."""
        try:
            import pocketsphinx  # noqa: F401
        except ImportError:
            return False
        return True

    @staticmethod
    def load_seconds() -> float | None:
        """Seconds the model took to load, or None if not loaded yet."""
        return _ps_load_seconds

    def transcribe(self, pcm: bytes) -> str:
        """Recognise one utterance (PCM16 LE mono at ``sample_rate``); returns lower-case words or ''."""
        if len(pcm) & 1:
            pcm = pcm[:-1]
        if self.sample_rate == _PS_RATE:
            audio = pcm
        else:
            # Linear, not windowed sinc: on espeak-voiced sentences pocketsphinx matched 26 % of the words
            # after linear 24->16 kHz against 19 % after the (cleaner) sinc resampler; it is also cheaper.
            resampler = Resampler(self.sample_rate, _PS_RATE)
            audio = resampler.process(pcm) + resampler.flush()
        if len(audio) < _PS_RATE // 10 * 2:  # under 100 ms: nothing to recognise
            return ""
        with _PS_LOCK:
            decoder = _pocketsphinx_decoder()
            decoder.start_utt()
            try:
                decoder.process_raw(audio, full_utt=True)
            finally:
                decoder.end_utt()
            hyp = decoder.hyp()
        return str(hyp.hypstr).strip() if hyp is not None else ""


# --------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------


def benchmark(wav_path: str | None = None, *, transcriber: bool = True) -> dict[str, float]:
    """Time the pieces on a 24 kHz PCM16 WAV (default: the shared candidate_intro.wav).

    Returns: ``resample_us_per_frame``, ``vad_us_per_frame`` (WebRTC call alone),
    ``detector_us_per_frame`` (VoiceActivity.feed on 20 ms chunks: resample + VAD + state),
    ``tts_ms_per_audio_s``, ``tts_ms_per_question``, ``transcriber_load_s``, ``transcriber_rtf``.
    """
    import wave

    path = wav_path or "/work/shared/audio/candidate_intro.wav"
    with wave.open(path, "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (WIRE_SAMPLE_RATE, 1, 2):
            raise ValueError(f"{path}: expected 24 kHz mono PCM16")
        pcm = wav.readframes(wav.getnframes())
    frame = 960  # 20 ms at 24 kHz
    chunks = [pcm[i : i + frame] for i in range(0, len(pcm) - frame + 1, frame)]
    results: dict[str, float] = {}

    resampler = Resampler(WIRE_SAMPLE_RATE, 16_000)
    resampled = [resampler.process(c) for c in chunks]
    rounds = max(1, 20_000 // len(chunks))
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(rounds):
            for c in chunks:
                resampler.process(c)
        best = min(best, time.perf_counter() - t0)
    results["resample_us_per_frame"] = best / (rounds * len(chunks)) * 1e6

    vad = _load_webrtcvad().Vad(2)
    best = math.inf
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(rounds):
            for r in resampled:
                vad.is_speech(r, 16_000)
        best = min(best, time.perf_counter() - t0)
    results["vad_us_per_frame"] = best / (rounds * len(chunks)) * 1e6

    best = math.inf
    for _ in range(5):
        detector = VoiceActivity()
        t0 = time.perf_counter()
        for _ in range(rounds):
            for c in chunks:
                detector.feed(c)
        best = min(best, time.perf_counter() - t0)
    results["detector_us_per_frame"] = best / (rounds * len(chunks)) * 1e6

    synth = Synthesizer()
    question = "Tell me about a project you are proud of, and what your role in it was."
    synth.synthesize("Warm up.")
    timings = []
    for _ in range(5):
        t0 = time.perf_counter()
        audio = synth.synthesize(question)
        timings.append(time.perf_counter() - t0)
    seconds = len(audio) / 2 / WIRE_SAMPLE_RATE
    results["tts_audio_s"] = seconds
    results["tts_ms_per_question"] = min(timings) * 1e3
    results["tts_ms_per_audio_s"] = min(timings) * 1e3 / seconds

    if transcriber:
        results["transcriber_load_s"] = Transcriber.preload()
        t0 = time.perf_counter()
        Transcriber().transcribe(pcm)
        results["transcriber_rtf"] = (time.perf_counter() - t0) / (len(pcm) / 2 / WIRE_SAMPLE_RATE)
    return results


def _main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Benchmark offline speech (TTS, resample+VAD, transcriber).")
    parser.add_argument("wav", nargs="?", help="24 kHz PCM16 mono WAV (default: shared candidate_intro.wav)")
    parser.add_argument("--no-transcriber", action="store_true", help="skip pocketsphinx")
    args = parser.parse_args()
    figures = benchmark(args.wav, transcriber=not args.no_transcriber)
    print(f"resample 24k->16k      : {figures['resample_us_per_frame']:8.2f} us / 20 ms frame")
    print(f"WebRTC VAD (16 kHz)    : {figures['vad_us_per_frame']:8.2f} us / 20 ms frame")
    print(f"VoiceActivity.feed     : {figures['detector_us_per_frame']:8.2f} us / 20 ms frame (resample+VAD+state)")
    print(
        f"TTS (espeak-ng)        : {figures['tts_ms_per_audio_s']:8.2f} ms / synthesised second"
        f"  ({figures['tts_ms_per_question']:.1f} ms for a {figures['tts_audio_s']:.2f} s question)"
    )
    if "transcriber_load_s" in figures:
        print(f"transcriber load       : {figures['transcriber_load_s']:8.3f} s")
        print(f"transcriber RTF        : {figures['transcriber_rtf']:8.3f} x real time (one stream)")
    else:
        print("transcriber            : off")


if __name__ == "__main__":
    _main()
