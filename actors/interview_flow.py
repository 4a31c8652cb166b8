"""The interview as a state machine: plain code, no sockets, no Ray, no database.

It decides what the interviewer does next from what happened: the candidate connecting or
leaving, their speech starting and stopping, the interviewer finishing an utterance, the clock.
It returns actions for the engine to carry out (speak, stop speaking, record a transcript item,
report progress, finish). Time is passed in (seconds on a monotonic clock) and audio positions
are milliseconds of the candidate's input audio, so the machine is deterministic and tests drive
it directly.

Transcript items get their sequence numbers here, in conversation order, exactly once: an
interviewer utterance is recorded when it ends (completely, or cut by the candidate), a candidate
turn when it ends. A question cut off by a dropped connection is asked again on reconnect (it was
never heard whole) but recorded once.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field


class Phase(enum.Enum):
    WAITING = "waiting"  # no candidate yet, or between a drop and the reconnect
    SPEAKING = "speaking"  # the interviewer is talking
    LISTENING = "listening"  # waiting for the candidate to answer
    CANDIDATE_SPEAKING = "candidate_speaking"
    FINISHED = "finished"


class EndReason(enum.Enum):
    COMPLETED = "completed"  # every question asked and answered
    TIME_LIMIT = "time_limit"
    ENDED_BY_TENANT = "ended_by_tenant"
    ABANDONED = "abandoned"  # the candidate stayed away longer than the grace period


@dataclass(frozen=True)
class Speak:
    item_id: str
    text: str
    question_index: int | None  # None for the closing words
    final: bool = False  # the interview finishes when this utterance ends


@dataclass(frozen=True)
class StopSpeaking:
    item_id: str


@dataclass(frozen=True)
class Record:
    sequence: int
    speaker: str  # "interviewer" | "candidate"
    text: str
    start_ms: int
    end_ms: int
    item_id: str


@dataclass(frozen=True)
class Progress:
    question: int  # 1-based; 0 before the first question
    of: int
    seconds_left: int


@dataclass(frozen=True)
class Finish:
    reason: EndReason


Action = Speak | StopSpeaking | Record | Progress | Finish


@dataclass
class _Utterance:
    item_id: str
    text: str
    question_index: int | None
    final: bool
    start_ms: int


@dataclass
class InterviewFlow:
    role: str
    questions: Sequence[str]
    time_limit_s: float
    closing_text: str = "Thank you, that was the last question. This interview is complete. Goodbye."
    time_up_text: str = "We have reached the time limit for this interview. Thank you for your time. Goodbye."

    phase: Phase = Phase.WAITING
    next_question: int = 0  # index of the next question to ask
    sequence: int = 0  # last transcript sequence number used
    connected_s: float = 0.0  # connected time accumulated before the current connection
    _connected_since: float | None = None
    _speaking: _Utterance | None = None
    _candidate_start_ms: int | None = None
    _cut_off: _Utterance | None = None  # an utterance the candidate never heard whole
    _item_counter: int = 0
    _finishing: EndReason | None = None
    end_reason: EndReason | None = None
    _started: bool = False
    _time_up_announced: bool = False
    recorded: list[Record] = field(default_factory=list)

    # -- queries --------------------------------------------------------------------------------
    def connected_time(self, now: float) -> float:
        live = now - self._connected_since if self._connected_since is not None else 0.0
        return self.connected_s + live

    def seconds_left(self, now: float) -> int:
        return max(0, int(self.time_limit_s - self.connected_time(now) + 0.999))

    def progress(self, now: float) -> Progress:
        asked = self.next_question if self._speaking is None or self._speaking.question_index is None \
            else self._speaking.question_index + 1
        return Progress(min(asked, len(self.questions)), len(self.questions), self.seconds_left(now))

    @property
    def speaking_item(self) -> str | None:
        return self._speaking.item_id if self._speaking else None

    # -- inputs ---------------------------------------------------------------------------------
    def connect(self, now: float, audio_ms: int) -> list[Action]:
        if self.phase is Phase.FINISHED:
            return []
        self._connected_since = now
        # A returning candidate is told where they are; a new one hears question 1 first.
        actions: list[Action] = [self.progress(now)] if self._started else []
        if not self._started:
            self._started = True
            actions += self._ask(audio_ms, prefix=self._opening)
        elif self._cut_off is not None:
            cut, self._cut_off = self._cut_off, None
            actions += self._say(audio_ms, cut.text, cut.question_index, cut.final, reuse_id=cut.item_id)
        elif self._finishing is not None:
            actions.append(self._finish(self._finishing))
        elif self.recorded and self.recorded[-1].speaker == "candidate":
            # Restored after the candidate's answer was saved: carry on with what comes next.
            if self.next_question < len(self.questions):
                actions += self._ask(audio_ms)
            else:
                self._finishing = EndReason.COMPLETED
                actions += self._say(audio_ms, self.closing_text, None, final=True)
        else:
            self.phase = Phase.LISTENING
        return actions

    def disconnect(self, now: float, audio_ms: int) -> list[Action]:
        if self._connected_since is not None:
            self.connected_s += now - self._connected_since
            self._connected_since = None
        if self.phase is Phase.FINISHED:
            return []
        actions: list[Action] = []
        if self._speaking is not None:
            # Not heard whole: ask it again on reconnect, record it once then.
            self._cut_off = self._speaking
            actions.append(StopSpeaking(self._speaking.item_id))
            self._speaking = None
        if self._candidate_start_ms is not None:
            actions += self._end_candidate_turn(audio_ms, "")
            if self._finishing is None and self.next_question < len(self.questions):
                # Their answer is saved; the next question waits for the reconnect.
                self._cut_off = self._next_utterance()
        self.phase = Phase.WAITING
        return actions

    def speech_started(self, audio_ms: int) -> list[Action]:
        actions: list[Action] = []
        if self.phase is Phase.SPEAKING and self._speaking is not None and not self._speaking.final:
            actions += self._stop_interviewer(audio_ms)  # barge-in
        if self.phase in (Phase.LISTENING, Phase.SPEAKING) and self._speaking is None:
            self.phase = Phase.CANDIDATE_SPEAKING
            self._candidate_start_ms = audio_ms
        return actions

    def speech_stopped(self, audio_ms: int, text: str = "") -> list[Action]:
        if self.phase is not Phase.CANDIDATE_SPEAKING or self._candidate_start_ms is None:
            return []
        actions = self._end_candidate_turn(audio_ms, text)
        if self._finishing is not None:
            return actions
        if self.next_question < len(self.questions):
            actions += self._ask(audio_ms)
        else:
            actions += self._say(audio_ms, self.closing_text, None, final=True)
            self._finishing = EndReason.COMPLETED
        return actions

    def speech_discarded(self) -> list[Action]:
        """The candidate cleared their input buffer: the turn in progress never happened."""
        if self.phase is Phase.CANDIDATE_SPEAKING:
            self._candidate_start_ms = None
            self.phase = Phase.LISTENING
        return []

    def cancel_speaking(self, audio_ms: int) -> list[Action]:
        """The client asked to cancel the interviewer's response."""
        if self._speaking is None or self._speaking.final:
            return []
        actions = self._stop_interviewer(audio_ms)
        self.phase = Phase.LISTENING
        return actions

    def speaking_done(self, item_id: str, audio_ms: int) -> list[Action]:
        """The engine has delivered all of an utterance's audio."""
        if self._speaking is None or self._speaking.item_id != item_id:
            return []
        done = self._speaking
        self._speaking = None
        actions: list[Action] = [self._record("interviewer", done.text, done.start_ms, audio_ms, done.item_id)]
        if done.final:
            actions.append(self._finish(self._finishing or EndReason.COMPLETED))
        else:
            self.phase = Phase.LISTENING
        return actions

    def tick(self, now: float, audio_ms: int) -> list[Action]:
        if self.phase is Phase.FINISHED or self._time_up_announced:
            return []
        if self.connected_time(now) < self.time_limit_s:
            return []
        self._time_up_announced = True
        self._finishing = EndReason.TIME_LIMIT
        actions: list[Action] = []
        if self._speaking is not None:
            actions += self._stop_interviewer(audio_ms)
        if self._candidate_start_ms is not None:
            actions += self._end_candidate_turn(audio_ms, "")
        if self._connected_since is None:
            return [*actions, self._finish(EndReason.TIME_LIMIT)]
        return actions + self._say(audio_ms, self.time_up_text, None, final=True)

    def end(self, reason: EndReason, audio_ms: int) -> list[Action]:
        """Ends now: the tenant stopped it, or the candidate was gone too long."""
        if self.phase is Phase.FINISHED:
            return []
        actions: list[Action] = []
        if self._speaking is not None:
            actions += self._stop_interviewer(audio_ms)
        if self._candidate_start_ms is not None:
            actions += self._end_candidate_turn(audio_ms, "")
        return [*actions, self._finish(reason)]

    def restore(self, records: Sequence[Record]) -> None:
        """Rebuilds progress from a stored transcript (after the actor restarted)."""
        for record in records:
            self.sequence = max(self.sequence, record.sequence)
            self.recorded.append(record)
            if record.speaker == "interviewer":
                self.next_question = max(self.next_question, _question_in(record.text, self.questions) + 1)
        # The time limit counts connected time, and a connected candidate streams audio without
        # pause, so the stored turns' audio offsets are a lower bound of the time already used
        # (what passed after the last stored turn is not known, and not charged).
        if records:
            self.connected_s = max(self.connected_s, max(r.end_ms for r in records) / 1000)
        self._started = bool(records)

    @property
    def _opening(self) -> str:
        return f"Hello, and welcome to your interview for the role of {self.role}. "

    def first_words(self) -> str | None:
        """What the interviewer says first when a new candidate connects (None once started)."""
        return None if self._started or not self.questions else self._opening + self.questions[0]

    # -- internals ------------------------------------------------------------------------------
    def _new_item_id(self) -> str:
        self._item_counter += 1
        return f"item_{self.sequence + self._item_counter:04d}_{self._item_counter}"

    def _next_utterance(self) -> _Utterance:
        index = self.next_question
        return _Utterance(self._new_item_id(), self.questions[index], index, False, 0)

    def _ask(self, audio_ms: int, prefix: str = "") -> list[Action]:
        index = self.next_question
        return self._say(audio_ms, prefix + self.questions[index], index, final=False)

    def _say(self, audio_ms: int, text: str, question_index: int | None, final: bool,
             reuse_id: str | None = None) -> list[Action]:
        if question_index is not None:
            self.next_question = question_index + 1
        utterance = _Utterance(reuse_id or self._new_item_id(), text, question_index, final, audio_ms)
        self._speaking = utterance
        self.phase = Phase.SPEAKING
        actions: list[Action] = [Speak(utterance.item_id, text, question_index, final)]
        if question_index is not None:
            actions.append(Progress(question_index + 1, len(self.questions), 0))
        return actions

    def _stop_interviewer(self, audio_ms: int) -> list[Action]:
        assert self._speaking is not None
        cut = self._speaking
        self._speaking = None
        self.phase = Phase.LISTENING
        return [StopSpeaking(cut.item_id), self._record("interviewer", cut.text, cut.start_ms, audio_ms, cut.item_id)]

    def _end_candidate_turn(self, audio_ms: int, text: str) -> list[Action]:
        assert self._candidate_start_ms is not None
        start = self._candidate_start_ms
        self._candidate_start_ms = None
        self.phase = Phase.LISTENING
        return [self._record("candidate", text, start, max(start, audio_ms), f"cand_{self.sequence + 1:04d}")]

    def _record(self, speaker: str, text: str, start_ms: int, end_ms: int, item_id: str) -> Record:
        self.sequence += 1
        record = Record(self.sequence, speaker, text, start_ms, max(start_ms, end_ms), item_id)
        self.recorded.append(record)
        return record

    def _finish(self, reason: EndReason) -> Finish:
        self.phase = Phase.FINISHED
        self.end_reason = reason
        return Finish(reason)


def _question_in(text: str, questions: Sequence[str]) -> int:
    """The last question an interviewer utterance contains (the opening wraps the first)."""
    found = -1
    for index, question in enumerate(questions):
        if question and question in text:
            found = index
    return found
