"""One user turn through every stage: (audio -> ASR) -> NLU -> dialogue -> TTS, timed.

`ask`, `replay`, `listen` and `serve` all go through `Skill`, so typed and spoken turns behave
the same; every answer is said by its `Responder` (rendered once, saved when asked, played in
the foreground or, for the live loop, from a thread). Nothing here prints: a turn comes back
as a `TurnRecord` (or `Ignored`) for the front-end to show, and a lost voice is logged (the
answer itself is never lost).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rapidfuzz import fuzz

from voiceskill.content import Content
from voiceskill.content.schema import FALLBACK
from voiceskill.dialogue import Conversation, Reply
from voiceskill.nlu import MAX_CHARACTERS, MIN_ASR_CONFIDENCE, IntentMatcher, Understanding
from voiceskill.outputs import OutputError, create_new, prepare_folder, reason
from voiceskill.text import normalize
from voiceskill.tts.speaker import Speaker, SpeechAudio, TtsUnavailable, encode_wav

if TYPE_CHECKING:
    from voiceskill.asr import Recognizer, Transcript

DEFAULT_RATE = 165
OWN_WORDS_SIMILARITY = 80
"""Heard over an answer, words this like a stretch of it (rapidfuzz partial_ratio) are its
echo: a reflection the canceller had not learned came back as a run of the answer's words,
which the classifier took for a question and answered, cutting the answer off."""
OWN_WORDS_LEAST = 3  # words; fewer say too little to tell
MIN_RATE = 60
SURE_QUESTION = 0.6
"""A question understood less surely than this from the first recogniser's words gets the
second opinion too (the README's "Whisper as a second opinion" has the measurements)."""

log = logging.getLogger(__name__)


def text_problem(text: str) -> str | None:
    """Why a question in `text` is not answered at all, or None: longer than MAX_CHARACTERS
    (the one limit every front-end's text goes through)."""
    if len(text) > MAX_CHARACTERS:
        return f"{len(text)} characters, at most {MAX_CHARACTERS}"
    return None


@dataclass(frozen=True)
class TurnRecord:
    """A finished turn, in the shape of the `--json` contract (see DESIGN.md)."""

    source: dict[str, str]
    transcript: str
    reply: Reply | None
    timings_ms: dict[str, float]
    error: str | None = None
    understood: bool = False
    """Whether the skill recognised what was said as something it handles: one of its
    intents, or a sign, even in words none of its intents has."""

    def to_json(self) -> dict:
        reply = self.reply
        record = {
            **self.source,
            "transcript": self.transcript,
            "intent": reply.intent if reply else None,
            "confidence": reply.confidence if reply else None,
            "node": reply.node if reply else None,
            "answer": reply.answer if reply else None,
            "outcome": reply.outcome if reply else None,
            "timings_ms": self.timings_ms,
        }
        if self.error:
            record["error"] = self.error
        return record


def _made_out_over(answer: str, understanding: Understanding) -> bool:
    """Whether what was heard over the skill's own `answer` was made out for sure
    (`Understanding.definite`) and is not a run of that answer's own words. A sign the phrase
    rules find always counts."""
    if understanding.flags or understanding.asked_flags:
        return True
    own_words = (len(understanding.text.split()) >= OWN_WORDS_LEAST and bool(answer)
                 and fuzz.partial_ratio(understanding.text, normalize(answer))
                 >= OWN_WORDS_SIMILARITY)
    return understanding.definite and not own_words


def _for_the_skill(understanding: Understanding) -> bool:
    """Whether a turn is one of the skill's: an intent of its own, or a sign (said, asked
    about, or to be confirmed) even in words it has no intent for."""
    return understanding.intent != FALLBACK or bool(
        understanding.flags or understanding.possible_flags or understanding.asked_flags)


class _Stopwatch:
    """Milliseconds spent per stage of one turn."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {"asr": 0.0, "nlu": 0.0, "dialogue": 0.0, "tts": 0.0}

    def run(self, stage: str, work: Callable):
        began = time.perf_counter()
        try:
            return work()
        finally:
            self.timings[stage] += round((time.perf_counter() - began) * 1000, 1)

    def finish(self) -> dict[str, float]:
        total = round((time.perf_counter() - self.start) * 1000, 1)
        return {**self.timings, "total": total}


@dataclass(frozen=True)
class Ignored:
    """A turn let pass, the conversation untouched. `half_heard`: said over the skill's own
    voice and not made out for sure (most likely its echo's residue); otherwise not
    understood, and no answer was awaited (not meant for the skill)."""

    transcript: str
    half_heard: bool


class Responder:
    """Says answers: each rendered once, saved when asked (the next free answer-NNN.wav) and
    played in the foreground or from a thread (the live loop keeps listening), noting when its
    first sound went out. A TTS failure costs the voice, never the answer."""

    def __init__(self, speaker: Speaker | None, save_audio: Path | None = None):
        self.speaker = speaker
        self.save_audio = save_audio
        self.first_audio_at: float | None = None
        self._saved = 0
        self._thread: threading.Thread | None = None
        self._cut = threading.Event()  # the stop flag of the answer said last

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def say(self, text: str, rate: int, background: bool = False) -> None:
        self.first_audio_at = None  # a silent answer ("stop") has no first sound
        if self.speaker is None or not text:
            return
        # Made here, before the thread that says the answer starts: an interrupt() (a barge-in,
        # Ctrl-C, SIGTERM) that comes before that thread reaches Speaker.speak, which a busy
        # machine may hold it back from, still cuts this answer off. It was lost, and listen
        # played the whole answer before it ended.
        self._cut = cut = threading.Event()
        if background and self.speaker.can_play:  # saving alone is quick: no thread
            self._thread = threading.Thread(target=self._say, args=(text, rate, cut),
                                            daemon=True)
            self._thread.start()
        else:
            self._say(text, rate, cut)

    def _say(self, text: str, rate: int, cut: threading.Event) -> None:
        speaker = self.speaker
        keep = self._save if self.save_audio is not None else None
        try:
            if speaker.can_play:
                speaker.speak(text, rate, on_first_audio=self._started, on_rendered=keep,
                              stop=cut)
            elif keep is not None:
                keep(speaker.render(text, rate))
        except TtsUnavailable as exc:
            log.warning("%s; printing answers only", exc)
            self.speaker = None

    def _started(self) -> None:
        self.first_audio_at = time.perf_counter()

    def wait_for_first_audio(self, limit_s: float = 5.0) -> float | None:
        """When the first sample of the answer just said went out (for latency figures), or
        None if nothing played."""
        deadline = time.perf_counter() + limit_s
        while self.busy and self.first_audio_at is None and time.perf_counter() < deadline:
            time.sleep(0.002)
        return self.first_audio_at

    def interrupt(self) -> bool:
        """Cut the answer off, also one whose thread is only starting; whether one was being
        spoken."""
        self._cut.set()
        return self.busy and self.speaker is not None

    def finish(self) -> None:
        """Wait until the answer being said has played out or been cut off."""
        if self._thread is not None:
            # A signal inside its start() leaves a thread that has not begun, and cannot be
            # joined; interrupted before it, it finds its answer cut off as it begins.
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=30)

    def _save(self, audio: SpeechAudio) -> None:
        """Write the answer to the next free answer-NNN.wav; if that fails, say so once and
        stop saving: the answer itself is still printed and spoken."""
        data = encode_wav(audio)
        try:
            prepare_folder(self.save_audio)
            self._saved, path, file = create_new(
                self.save_audio, lambda n: f"answer-{n:03d}.wav", 0o644, self._saved + 1
            )
        except OutputError as exc:
            self._stop_saving(str(exc))
            return
        try:
            with file:
                file.write(data)
        except OSError as exc:  # e.g. a full disk: the answer is still given
            path.unlink(missing_ok=True)
            self._stop_saving(f"cannot write {path}: {reason(exc)}")

    def _stop_saving(self, why: str) -> None:
        log.warning("%s; not saving answers", why)
        self.save_audio = None


@dataclass
class Skill:
    """The assembled pipeline. `speaker` and `recognizer` are optional stages; answers are
    said by `voice`."""

    content: Content
    speaker: InitVar[Speaker | None] = None
    recognizer: Recognizer | None = None
    rate: int = DEFAULT_RATE
    save_audio: InitVar[Path | None] = None
    matcher: IntentMatcher = field(init=False)
    voice: Responder = field(init=False)

    def __post_init__(self, speaker: Speaker | None, save_audio: Path | None) -> None:
        self.matcher = IntentMatcher(self.content)
        self.voice = Responder(speaker, save_audio)

    def conversation(self) -> Conversation:
        return Conversation(self.content)

    def text_turn(self, conversation: Conversation, text: str) -> TurnRecord:
        """Answer typed text; longer than MAX_CHARACTERS, a record with `error` and no reply
        (cutting it short could cut off a "no" or the sign that matters)."""
        clock = _Stopwatch()
        problem = text_problem(text)
        if problem:
            error = f"typed question not answered: {problem}"
            return TurnRecord({"text": text}, "", None, clock.finish(), error=error)
        return self._answer(conversation, {"text": text}, text, clock)

    def audio_turn(self, conversation: Conversation, path: Path) -> TurnRecord:
        """Recognise a WAV file and answer it; a bad file gives a record with `error`, no reply."""
        from voiceskill.asr import transcribe_file
        from voiceskill.audio import AudioError

        if self.recognizer is None:
            raise RuntimeError("audio_turn needs a recognizer")
        clock = _Stopwatch()
        source = {"audio": str(path)}
        try:
            transcript = clock.run("asr", lambda: transcribe_file(self.recognizer, path))
        except AudioError as exc:
            return TurnRecord(source, "", None, clock.finish(), error=str(exc))
        except RuntimeError as exc:  # the engine failed mid-utterance; the next turn restarts it
            error = f"{Path(path).name}: recognition failed ({exc})"
            return TurnRecord(source, "", None, clock.finish(), error=error)
        transcript, understanding = self.recognised(transcript, clock)
        return self._respond(conversation, source, transcript.text, understanding, clock,
                             speak=True)

    def heard(self, conversation: Conversation, transcript: Transcript, asr_ms: float,
              over_answer: bool = False, talked_over: bool = True,
              addressed: bool = False) -> TurnRecord | Ignored:
        """Answer what the live loop recognised, keeping its ASR time; the loop speaks.

        Decided before the conversation changes, so a pending question ("Did you say ...?")
        is never dropped unanswered: said `over_answer` (the skill's own voice), only what was
        made out for sure is answered, and a command or a yes/no answer (a word or two, what
        the echo's residue is heard as) only if the user `talked_over` it for sure (the
        microphone rose over the echo); and unless the user
        `addressed` the skill (its wake phrase), what is not understood is let pass, except as
        the answer to a question.
        """
        clock = _Stopwatch()
        clock.timings["asr"] = round(asr_ms, 1)
        transcript, understanding = self.recognised(transcript, clock)
        if over_answer and not (_made_out_over(conversation.last_answer, understanding)
                                and (talked_over or not self._command_or_answer(understanding))):
            return Ignored(transcript.text, half_heard=True)
        if not (_for_the_skill(understanding) or addressed or conversation.awaiting_answer):
            return Ignored(transcript.text, half_heard=False)
        return self._respond(conversation, {}, transcript.text, understanding, clock, speak=False)

    def recognised(self, transcript: Transcript,
                   clock: _Stopwatch | None = None) -> tuple[Transcript, Understanding]:
        """What was heard and what it means. Words not understood, or a question understood
        unsurely, get the recogniser's second opinion when it has one (the cascade), taken if
        that is understood; its time is ASR's."""
        clock = clock or _Stopwatch()
        understanding = clock.run(
            "nlu", lambda: self.matcher.understand(transcript.text, transcript.confidence))
        ask = getattr(self.recognizer, "second_opinion", None)
        if ask is None or not self._unsure(understanding):
            return transcript, understanding
        other = clock.run("asr", ask)
        if other.text:
            second = clock.run(
                "nlu", lambda: self.matcher.understand(other.text, other.confidence))
            if second.intent != FALLBACK:
                return other, second
        return transcript, understanding

    def _unsure(self, understanding: Understanding) -> bool:
        """Not understood, or a question understood less surely than SURE_QUESTION with no
        sign heard in it. A command or an answer is never held up for a second opinion, and
        a sign the first recogniser heard is never traded away."""
        if understanding.intent == FALLBACK:
            return True
        return (understanding.confidence < SURE_QUESTION
                and not self._command_or_answer(understanding)
                and not (understanding.flags or understanding.possible_flags))

    def _command_or_answer(self, understanding: Understanding) -> bool:
        """A command ("stop") or a yes/no answer: the content's actions and answers."""
        return (understanding.intent in self.content.actions
                or understanding.intent in self.content.answers)

    def _answer(self, conversation: Conversation, source: dict, text: str, clock) -> TurnRecord:
        understanding = clock.run("nlu", lambda: self.matcher.understand(text))
        return self._respond(conversation, source, text, understanding, clock, speak=True)

    def _respond(self, conversation: Conversation, source: dict, text: str,
                 understanding: Understanding, clock, speak: bool) -> TurnRecord:
        reply = clock.run("dialogue", lambda: conversation.respond(understanding))
        if speak:
            clock.run("tts", lambda: self.voice.say(reply.answer, self.speech_rate(reply)))
        return TurnRecord(source, text, reply, clock.finish(),
                          understood=_for_the_skill(understanding))

    def screen(self, transcript: Transcript) -> str:
        """The words to pass on from a recognition, or "" when the recogniser was unsure and
        heard no red flag: the confidence gate, for a front-end whose next stage never sees
        the confidence (a Home Assistant pipeline).  A red flag passes: missing one is worse.
        A cascade's second opinion is asked as for any turn (`recognised`)."""
        def sure(heard: Transcript) -> bool:
            return heard.confidence is None or heard.confidence >= MIN_ASR_CONFIDENCE

        if sure(transcript) and not hasattr(self.recognizer, "second_opinion"):
            return transcript.text
        transcript, understanding = self.recognised(transcript)
        return transcript.text if sure(transcript) or understanding.flags else ""

    def speech_rate(self, reply: Reply) -> int:
        return max(MIN_RATE, int(self.rate * reply.rate_scale))
