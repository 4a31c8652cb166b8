"""The offline interviewer's speech, from actors/speech.py: synthesis (cached per text, since
every interview of a template asks the same questions), turn detection and optional
transcription."""

from __future__ import annotations

import threading
from collections import OrderedDict

from actors.speech import SpeechStarted, Synthesizer, Transcriber, VoiceActivity, espeak_voice_for


class _TurnDetector:
    def __init__(self, silence_ms: int) -> None:
        self._vad = VoiceActivity(silence_ms=silence_ms)

    def feed(self, pcm: bytes) -> list[tuple[str, int]]:
        return [("started", e.start_ms) if isinstance(e, SpeechStarted) else ("stopped", e.end_ms)
                for e in self._vad.feed(pcm)]


class OfflineSpeechKit:
    def __init__(self, *, transcribe: bool, cache_entries: int = 64) -> None:
        self._synth = Synthesizer()
        self._transcriber = Transcriber() if transcribe else None
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cache_entries = cache_entries
        self._lock = threading.Lock()

    @property
    def transcribes(self) -> bool:
        return self._transcriber is not None

    def synthesize(self, text: str, language: str) -> bytes:
        key = (text, language)
        # One lock across synthesis: espeak runs one text at a time anyway, and ten interviews
        # starting together on one template then synthesise its first question once, not ten times.
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
            pcm = self._synth.synthesize(text, voice=espeak_voice_for(language))
            self._cache[key] = pcm
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
        return pcm

    def synthesized(self, text: str, language: str) -> bytes | None:
        # A plain read, no lock: a synthesis in progress on another thread must not block the loop.
        return self._cache.get((text, language))

    def new_turn_detector(self, silence_ms: int) -> _TurnDetector:
        return _TurnDetector(silence_ms)

    def transcribe(self, pcm: bytes) -> str:
        return self._transcriber.transcribe(pcm) if self._transcriber is not None else ""
