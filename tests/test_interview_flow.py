"""The interview state machine, driven directly: no sockets, no Ray, no database."""

from __future__ import annotations

from actors.interview_flow import (
    EndReason,
    Finish,
    InterviewFlow,
    Phase,
    Progress,
    Record,
    Speak,
    StopSpeaking,
)

QUESTIONS = ["Tell me about yourself.", "Describe a hard bug.", "Why this role?"]


def flow(limit: float = 600) -> InterviewFlow:
    return InterviewFlow(role="Engineer", questions=QUESTIONS, time_limit_s=limit)


def only(actions: list[object], kind: type) -> list[object]:
    return [a for a in actions if isinstance(a, kind)]


def answer(f: InterviewFlow, at_ms: int, text: str = "") -> list[object]:
    f.speech_started(at_ms)
    return f.speech_stopped(at_ms + 1000, text)


def finish_speaking(f: InterviewFlow, at_ms: int) -> list[object]:
    item = f.speaking_item
    assert item is not None
    return f.speaking_done(item, at_ms)


def test_whole_interview_in_order() -> None:
    f = flow()
    first = f.connect(0.0, 0)
    speak = only(first, Speak)
    assert len(speak) == 1 and QUESTIONS[0] in speak[0].text and "Engineer" in speak[0].text  # type: ignore[attr-defined]
    t = 0
    for i in range(len(QUESTIONS)):
        t += 3000
        finish_speaking(f, t)
        assert f.phase is Phase.LISTENING
        t += 2000
        actions = answer(f, t, f"answer {i}")
        t += 1000
        said = only(actions, Speak)
        assert len(said) == 1
        if i + 1 < len(QUESTIONS):
            assert said[0].text == QUESTIONS[i + 1]  # type: ignore[attr-defined]
        else:
            assert said[0].final  # type: ignore[attr-defined]
    done = finish_speaking(f, t + 2000)
    assert only(done, Finish) == [Finish(EndReason.COMPLETED)]
    records = [r for r in f.recorded]
    assert [r.sequence for r in records] == list(range(1, 2 * len(QUESTIONS) + 2))
    assert [r.speaker for r in records] == ["interviewer", "candidate"] * 3 + ["interviewer"]
    assert [r.text for r in records if r.speaker == "candidate"] == ["answer 0", "answer 1", "answer 2"]
    assert all(r.start_ms <= r.end_ms for r in records)


def test_barge_in_stops_the_interviewer_and_counts_as_the_answer() -> None:
    f = flow()
    f.connect(0.0, 0)
    item = f.speaking_item
    actions = f.speech_started(800)
    assert StopSpeaking(item) in actions  # type: ignore[arg-type]
    recorded = only(actions, Record)
    assert recorded and recorded[0].speaker == "interviewer" and recorded[0].end_ms == 800  # type: ignore[attr-defined]
    assert f.phase is Phase.CANDIDATE_SPEAKING
    nxt = f.speech_stopped(2500, "I am an engineer")
    assert only(nxt, Speak)[0].text == QUESTIONS[1]  # type: ignore[attr-defined]


def test_drop_while_speaking_repeats_the_question_but_records_it_once() -> None:
    f = flow()
    f.connect(0.0, 0)
    item = f.speaking_item
    dropped = f.disconnect(5.0, 1000)
    assert dropped == [StopSpeaking(item)]  # type: ignore[list-item]
    again = f.connect(20.0, 1000)
    speak = only(again, Speak)
    assert len(speak) == 1 and speak[0].item_id == item  # type: ignore[attr-defined]
    finish_speaking(f, 4000)
    assert [r.speaker for r in f.recorded] == ["interviewer"]


def test_drop_while_listening_resumes_listening_without_asking_again() -> None:
    f = flow()
    f.connect(0.0, 0)
    finish_speaking(f, 3000)
    f.disconnect(4.0, 3500)
    again = f.connect(10.0, 3500)
    assert only(again, Speak) == [] and f.phase is Phase.LISTENING
    assert isinstance(again[0], Progress) and again[0].question == 1


def test_drop_mid_answer_saves_it_and_asks_next_on_return() -> None:
    f = flow()
    f.connect(0.0, 0)
    finish_speaking(f, 3000)
    f.speech_started(4000)
    dropped = f.disconnect(6.0, 6000)
    assert [r.speaker for r in only(dropped, Record)] == ["candidate"]  # type: ignore[attr-defined]
    back = f.connect(9.0, 6000)
    assert only(back, Speak)[0].text == QUESTIONS[1]  # type: ignore[attr-defined]


def test_time_limit_counts_connected_time_only() -> None:
    f = flow(limit=60)
    f.connect(0.0, 0)
    f.disconnect(30.0, 30000)
    assert f.tick(1000.0, 30000) == []  # away for a long time: not counted
    f.connect(1000.0, 30000)
    assert f.seconds_left(1010.0) == 20
    actions = f.tick(1031.0, 60000)
    said = only(actions, Speak)
    assert said and said[0].final and "time limit" in said[0].text  # type: ignore[attr-defined]
    finish = finish_speaking(f, 63000)
    assert only(finish, Finish) == [Finish(EndReason.TIME_LIMIT)]


def test_end_by_tenant_finishes_now() -> None:
    f = flow()
    f.connect(0.0, 0)
    actions = f.end(EndReason.ENDED_BY_TENANT, 500)
    assert actions[-1] == Finish(EndReason.ENDED_BY_TENANT) and f.phase is Phase.FINISHED
    assert f.connect(1.0, 500) == []


def test_restore_from_transcript_continues_with_the_next_question() -> None:
    f = flow()
    f.restore([Record(1, "interviewer", "Hello ... " + QUESTIONS[0], 0, 2000, "a"),
               Record(2, "candidate", "me", 3000, 5000, "b")])
    actions = f.connect(0.0, 0)
    assert only(actions, Speak)[0].text == QUESTIONS[1]  # type: ignore[attr-defined]
    finish_speaking(f, 1000)
    assert f.recorded[-1].sequence == 3


def test_clearing_the_buffer_discards_the_turn() -> None:
    f = flow()
    f.connect(0.0, 0)
    finish_speaking(f, 3000)
    f.speech_started(4000)
    f.speech_discarded()
    assert f.speech_stopped(5000) == [] and f.phase is Phase.LISTENING



def test_restore_charges_the_time_already_used() -> None:
    """After an actor restart the time limit does not start again from zero: the stored turns'
    audio offsets (the candidate streams while connected) are time already used."""
    f = flow()
    f.restore([Record(1, "interviewer", "Hello ... " + QUESTIONS[0], 0, 2000, "a"),
               Record(2, "candidate", "me", 3000, 45_000, "b")])
    f.connect(100.0, 45_000)
    assert f.seconds_left(100.0) == int(f.time_limit_s) - 45
