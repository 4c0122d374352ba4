"""The live loop: microphone -> utterances -> answers spoken back, until goodbye or a signal.

The microphone callback only queues 30 ms blocks; everything else runs in the main thread:
voice activity detection cuts utterances, the streaming recogniser decodes them as they come,
and answers are spoken from a second thread so the loop keeps listening. While an answer is
playing, the user talking over it cuts it off (barge-in) at once when the microphone hears
more than the answer's echo (see _talked_over), else once what was said is made out for sure
(a question, a red flag; a command or a yes/no answer only from speech that rose over the
echo, the same to the end of the echo's tail): cut on any sound, the answer was cut off by
what the echo canceller left of its own echo, and a residue heard "bye" ended a session
(bench/echo_path.py); and never from what matches the answer itself at one delay, the
answer come back later than the canceller reaches (_own_voice). What is said in a barge-in
is also decoded with the commands' sentences alone, taken when the full model only half
heard it.
The loop first says the content's greeting (its start node): the echo canceller learns the
room on it, so the first answer is cancelled like the later ones. "listening" is shown once
the greeting and its echo are over.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import queue
import signal
import threading
import time
from dataclasses import replace

import numpy as np
from rapidfuzz import fuzz

from voiceskill import devices
from voiceskill.asr import Transcript, Utterance, create_recognizer
from voiceskill.asr.frontend import split_frontend
from voiceskill.audio import UtteranceDetector
from voiceskill.content import Content
from voiceskill.live.echo import OWN_VOICE_CORRELATION, TRACE_S, EchoCanceller
from voiceskill.pipeline import Ignored, Skill
from voiceskill.present import Status, TurnLog, report
from voiceskill.text import normalize

log = logging.getLogger(__name__)

BLOCK_S = 0.03
WAKE_SIMILARITY = 80.0
MIC_SILENT_LIMIT_S = 3.0
ENHANCED_KEPT_S = 10  # more than any speech the detector still holds back
# Speech over an answer cuts it off at once if the microphone, against what is played, rises
# this much as it begins (EchoCanceller.rise_db): the user's voice adds to the echo, while what
# the canceller leaves of the echo (most, when its filter has lost the room) is no louder than
# the echo was.
BARGE_IN_RISE_DB = 3.0


class Microphone:
    """Mono int16 blocks from sounddevice, at the rate the voice detector takes; the callback
    never blocks or allocates much."""

    def __init__(self, device_spec: str | None,
                 sample_rate: int = UtteranceDetector.sample_rate):
        sd = devices.sounddevice()
        self.sample_rate = sample_rate
        index = devices.find_device(device_spec, kind="input")
        self._blocks: queue.Queue[tuple[int, np.ndarray]] = queue.Queue(maxsize=1000)
        self.captured = 0  # samples recorded so far: the clock the echo canceller aligns on
        self.block_position = 0  # where the block read() returned last starts on that clock
        self._stamp = (0, 0.0)  # (samples captured, stream time the last block began)
        try:
            self._stream = sd.InputStream(
                samplerate=sample_rate, channels=1, dtype="int16",
                blocksize=round(sample_rate * BLOCK_S),
                device=index, callback=self._callback,
            )
        except sd.PortAudioError as exc:
            raise devices.DeviceError(f"cannot open the microphone: {exc}") from None

    def _callback(self, indata, frames, time_info, status) -> None:
        # If the loop stalled, dropping audio beats growing without bound.
        with contextlib.suppress(queue.Full):
            self._blocks.put_nowait((self.captured, indata[:, 0].copy()))
        self._stamp = (self.captured, time_info.inputBufferAdcTime)
        self.captured += frames

    def position_at(self, stream_time: float) -> int:
        """The sample the microphone records at `stream_time` (PortAudio's clock, which every
        stream of the process shares): where the echo canceller places what is played then."""
        captured, recorded_at = self._stamp
        return captured + round((stream_time - recorded_at) * self.sample_rate)

    def read(self, timeout: float) -> np.ndarray | None:
        """The next block, or None; raises DeviceError once the device has gone quiet for good.

        A working microphone delivers blocks even in silence, so none for MIC_SILENT_LIMIT_S
        means it was unplugged or its server went away."""
        try:
            self.block_position, block = self._blocks.get(timeout=timeout)
        except queue.Empty:
            if time.monotonic() - self._last_block > MIC_SILENT_LIMIT_S:
                message = "the microphone stopped sending audio (unplugged?)"
                raise devices.DeviceError(message) from None
            return None
        self._last_block = time.monotonic()
        return block

    def __enter__(self) -> Microphone:
        self._stream.start()
        self._last_block = time.monotonic()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stream.abort()
        self._stream.close()


class _Kept:
    """The last ENHANCED_KEPT_S of a stream that runs sample for sample with what the voice
    detector hears, from the start of the loop."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.samples = np.zeros(0, dtype=np.int16)  # latest last
        self.first = 0  # the position of samples[0]

    def add(self, samples: np.ndarray) -> None:
        self.samples = np.concatenate([self.samples, samples])
        excess = len(self.samples) - ENHANCED_KEPT_S * self.rate
        if excess > 0:
            self.samples, self.first = self.samples[excess:], self.first + excess

    def at(self, time_s: float, length: int) -> np.ndarray:
        """The `length` samples the detector found at `time_s` (silence for any not kept)."""
        begin = round(time_s * self.rate) - self.first
        found = self.samples[max(0, begin) : max(0, begin + length)]
        return np.concatenate([found, np.zeros(length - len(found), dtype=np.int16)])

    def since(self, position: int) -> np.ndarray:
        """What is kept from sample `position` (on the detector's clock) on."""
        return self.samples[max(0, position - self.first) :]


def _strip_wake(text: str, wake: str) -> str | None:
    """The words after the wake phrase, "" for the phrase alone, None if it was not said."""
    words, wake_words = normalize(text).split(), normalize(wake).split()
    head = " ".join(words[: len(wake_words)])
    if fuzz.ratio(head, " ".join(wake_words)) < WAKE_SIMILARITY:
        return None
    return " ".join(words[len(wake_words) :])


def command_recognizer(content: Content, wake: str | None):
    """pocketsphinx (whatever the engine) with a model of the commands' sample sentences
    alone, and the wake phrase: a short command said over an answer's echo is made out more
    often by it than by the full model (docs/measurements.md)."""
    sentences = {name: content.intents[name] for name in content.actions}
    if wake:
        sentences["wake"] = [normalize(wake)]
    return create_recognizer("pocketsphinx", sentences,
                             pronunciations=content.lexicon.pronunciations)


class _Stop(BaseException):
    """SIGTERM, turned into an orderly exit of the loop; like KeyboardInterrupt, no handler
    of ordinary errors (in a library, around a device call) may take it for one."""


_stop_asked = threading.Event()
"""Set by SIGTERM and Ctrl-C, and checked by the loop at every block: the exception their
handlers raise is swallowed when it is raised inside a __del__ or a weakref callback (Python
prints "Exception ignored in ..." and goes on), as it was once inside say() as it replaced
the previous answer's thread, and listen then ran on until killed."""


def _raise_stop(signum, frame) -> None:
    _stop_asked.set()
    raise _Stop


def _raise_interrupt(signum, frame) -> None:
    _stop_asked.set()
    raise KeyboardInterrupt


def listen(skill: Skill, args: argparse.Namespace, microphone: Microphone,
           status: Status) -> int:
    """Run until goodbye, Ctrl-C or SIGTERM (0), or until the microphone goes away (2)."""
    _stop_asked.clear()
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    # Ctrl-C as Python's own handler takes it, unless it is ignored (a shell's background job)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, _raise_interrupt)
    log = TurnLog(args.log_dir) if args.log_dir else None
    loop = Loop(skill, args, status, log)
    status_code, cause = 0, "goodbye"
    try:
        with microphone:
            loop.run(microphone)
    except (KeyboardInterrupt, _Stop):
        loop.voice.interrupt()
        cause = "interrupted"
    except devices.DeviceError as exc:
        status.show("error", message=str(exc))
        status_code, cause = 2, "microphone_lost"
    finally:
        loop.voice.interrupt()
        loop.voice.finish()
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
        status.done(cause, status_code)
        if log:
            log.close()
    return status_code


class Loop:
    """One conversation on the microphone: utterances in, answers out. `run` takes any
    source of blocks with the microphone's `read`, `block_position` and `position_at`;
    `answer` is what it does with what was recognised (tests drive both in process)."""

    def __init__(self, skill: Skill, args: argparse.Namespace, status: Status, log):
        self.skill = skill
        self.args = args
        self.status = status
        self.log = log
        self.voice = skill.voice
        self.conversation = skill.conversation()
        self.detector = UtteranceDetector()
        self.rate = self.detector.sample_rate  # what the microphone records at
        self.enhancer, self.recognizer = split_frontend(skill.recognizer)
        self.echo: EchoCanceller | None = None
        self.awake = False
        self.deaf = False  # holding back an utterance that may be the skill's own echo
        self.held: list[tuple[int, np.ndarray]] = []  # its audio, by microphone position
        # What the recogniser may hear of an utterance, sample for sample with what the voice
        # detector hears: the front-end's output, and the echo canceller's before its
        # residual-echo suppressor.
        self.enhanced, self.unsuppressed = _Kept(self.rate), _Kept(self.rate)
        self.answer_playing = False  # an answer, or its echo, may still reach the microphone
        self.over_answer = False  # the current utterance began while it could
        # and the user was heard over it for sure as it began (_talked_over), or it did not:
        # else what the canceller left of the echo may be all there is, and no command is taken
        self.talked_over = True
        self.utterance: Utterance | None = None  # what the recogniser is hearing
        self.utterance_from = 0  # where it began, on the detector's clock (samples)
        self.commands = self._command_listener()  # before the microphone runs: it loads a model
        self.command_utterance: Utterance | None = None  # what it is hearing, in a barge-in
        self.greeting = skill.content.nodes[skill.content.start].say  # said first
        self.greeted = False  # the greeting, and its echo, are over

    def run(self, microphone: Microphone) -> None:
        self.echo = self._echo_canceller(microphone)
        while not self.conversation.ended:
            if _stop_asked.is_set():  # the signal's exception was swallowed on the way
                raise _Stop
            block = microphone.read(timeout=0.5)
            if block is None:
                continue
            if self.greeting:  # once the microphone's clock runs, for the echo to be placed on
                self.voice.say(self.greeting, self.skill.rate, background=True)
                self.greeting = ""
            if self.echo is not None:
                block = self.echo.process(block, microphone.block_position)
                self.unsuppressed.add(self.echo.unsuppressed)
                self._follow_echo(microphone.block_position)
            if not (self.greeted or self.voice.busy or self.answer_playing):
                self.greeted = True
                self.status.show("listening")
            # Speech is detected on the signal itself: after an enhancer a short "no" or "stop"
            # (under half a second) no longer reached the detector's start rule on the virtual
            # devices.
            self.enhanced.add(self.enhancer.process(block))
            for event in self.detector.process(block):
                self._on_event(event)
        self.voice.finish()

    def _on_event(self, event) -> None:
        """One VAD event; an engine failure loses this utterance only, never the loop."""
        try:
            self._recognise(event)
        except RuntimeError as exc:
            self.status.show("recognition_failed", error=str(exc))

    def _echo_canceller(self, microphone: Microphone) -> EchoCanceller | None:
        """Cancel the answers the skill plays from what the microphone hears (--no-echo-cancel
        turns it off, e.g. with a headset)."""
        speaker = self.voice.speaker
        if not self.args.echo_cancel or speaker is None or not speaker.can_play:
            return None
        echo = EchoCanceller(self.rate, microphone.position_at)
        speaker.playback_listener = echo.reference
        return echo

    def _command_listener(self):
        """command_recognizer for this content, or None when nothing is played aloud."""
        speaker = self.voice.speaker
        if speaker is None or not speaker.can_play:
            return None
        return command_recognizer(self.skill.content, self.args.wake)

    def _for_recogniser(self, event) -> np.ndarray:
        """What the recogniser hears of an audio event: the enhanced signal, except over an
        answer whose echo the microphone hears. There the enhancers, given a signal whose echo
        was just taken out, smeared a short "stop" into words the recogniser was unsure of
        (bench/echo_path.py), and it hears the canceller's filter without the residual-echo
        suppressor, through which a question asked as an answer ended was heard "are twitches
        and cramps i'm sick" for "... the same thing" (the detector, and the barge-in levels,
        still go by the suppressed signal)."""
        if self.over_answer and self.echo is not None and self.echo.reference.echo_found:
            return self.unsuppressed.at(event.time_s, len(event.samples))
        return self.enhanced.at(event.time_s, len(event.samples))

    def _start_utterance(self, barge_in: bool = False) -> None:
        """`barge_in`: the user is heard talking over the answer, which is cut off; what they
        say is then also heard by the command listener."""
        barged_in = barge_in and self.voice.interrupt()
        if barged_in:
            self.status.show("answer_stopped")
        self.utterance = Utterance(self.recognizer)
        self.command_utterance = (Utterance(self.commands)
                                  if barged_in and self.commands is not None else None)
        self.status.show("hearing")

    def _talked_over(self, time_s: float) -> bool:
        """Whether speech that began at `time_s` over the answer is the user's for sure: with
        no echo to cancel, or the microphone rising BARGE_IN_RISE_DB over the echo as it began."""
        if self.echo is None or not self.echo.reference.echo_found:
            return True
        log.debug("the canceller's last %.1f s (microphone/output/played dB): %s",
                  TRACE_S, self.echo.trace())
        rise = self.echo.rise_db(round(time_s * self.rate))
        log.debug("speech over an answer at %.2f s: the microphone %+.1f dB against what is "
                  "played", time_s, rise if rise is not None else float("nan"))
        return rise is not None and rise >= BARGE_IN_RISE_DB

    def _feed(self, samples: np.ndarray) -> None:
        """Recognise `samples` as part of the current utterance. One that reaches MAX_TURN_S
        (the cap replay and serve use) is answered as it stands and the speech that goes on
        is the next utterance: a TV the detector never hears pause does not make the skill
        deaf, nor the recogniser's memory grow."""
        rest = self.utterance.feed(samples)
        if self.command_utterance is not None:
            self.command_utterance.feed(samples)
        if self.utterance.full:
            self._end_utterance(wait_ms=0.0)
            self.over_answer = self.voice.busy or self.answer_playing
            self._start_utterance()
            self._feed(rest)

    def _end_utterance(self, wait_ms: float) -> None:
        speech_end = time.perf_counter()
        readings = [self.utterance.end()]
        if self.command_utterance is not None:
            readings.append(self.command_utterance.end())
        asr_ms = (time.perf_counter() - speech_end) * 1000
        if self._own_voice():
            self.status.show("ignored", reason="own_voice")
            return
        self.answer(readings, speech_end, asr_ms, wait_ms)

    def _own_voice(self) -> bool:
        """Whether the utterance just ended, heard over the answer or its echo without rising
        over the echo, is that answer itself come back by a path the canceller's filter does not
        model (a late reflection): the filter let through something that matches the answer at
        one delay (OWN_VOICE_CORRELATION; judged on what is kept of it, its last
        ENHANCED_KEPT_S). Decoded, such a reflection was a run of the answer's words too garbled
        to be told for them, now and then taken for a question or a red flag that cut the
        answer off. Speech that rose over the echo is the user's and is never judged so."""
        if (not self.over_answer or self.talked_over or self.echo is None
                or not self.echo.reference.echo_found):
            return False
        match = self.echo.reference.own_voice(self.unsuppressed.since(self.utterance_from))
        log.debug("what was heard over the answer matches the answer by %.2f", match)
        return match >= OWN_VOICE_CORRELATION

    def _release_if_no_echo(self) -> None:
        """A held-back utterance is the user's if the canceller found no echo to learn."""
        if self.deaf and self.echo.reference.aligned and not self.echo.reference.echo_found:
            self.deaf, self.talked_over = False, True
            self._start_utterance(barge_in=True)
            self._feed_held(after=0)

    def _feed_held(self, after: int) -> None:
        """Give the recogniser what was held back of the utterance from microphone position
        `after` on."""
        for position, samples in self.held:
            if position + len(samples) > after:
                self._feed(samples[max(0, after - position) :])

    def _follow_echo(self, position: int) -> None:
        """When an answer has played out and its echo died away, show how much of the echo the
        canceller took out, and stop holding back the utterance the echo began (the user may
        answer at once)."""
        self._release_if_no_echo()
        if self.voice.busy or self.echo.reference.heard_at(position):
            self.answer_playing = True
        elif self.answer_playing:
            self.answer_playing = False
            self.status.show("answer_played", erle_db=round(self.echo.answer_erle_db, 1))
            log.debug("the canceller's last %.1f s (microphone/output/played dB): %s",
                      TRACE_S, self.echo.trace())
            if self.deaf:  # the echo is over: what followed its last sound is the user,
                self.deaf = False  # who may have started before the echo's tail died away
                self.talked_over = True
                self._start_utterance()
                self._feed_held(after=self.echo.reference.sound_end)

    def _recognise(self, event) -> None:
        if event.kind == "start":
            self.utterance_from = round(event.time_s * self.rate)
            # Over an answer, speech begun before the canceller had learned the room is most
            # likely the answer's own echo: it neither barges in nor becomes a turn.
            # It is held back until the canceller knows: no echo at all (a headset, a far
            # speaker) makes it the user's after all.
            self.over_answer = self.voice.busy or self.answer_playing
            self.deaf = self.over_answer and self.echo is not None and not self.echo.settled_at(
                round(event.time_s * self.rate))
            self.held = []
            if self.echo is not None and self.over_answer:
                log.debug("speech over an answer at %.2f s: echo canceller %s, %.0f dB",
                          event.time_s, "learning" if self.deaf else "settled",
                          self.echo.erle_db)
            if self.deaf:
                self.status.show("hearing_own_voice")
                return
            self.talked_over = not self.over_answer or self._talked_over(event.time_s)
            self._start_utterance(barge_in=self.over_answer and self.talked_over)
        elif self.deaf:
            if event.kind == "audio":
                self.held.append((round(event.time_s * self.rate),
                                  self._for_recogniser(event)))
            self._release_if_no_echo()
            if self.deaf:
                self.deaf = event.kind != "end"  # once the echo has been learned, it ends
                if not self.deaf:
                    log.debug("dropped %.2f s held back as echo", event.time_s)
                return
            if event.kind == "end":
                self._recognise(event)
        elif event.kind == "audio":
            self._feed(self._for_recogniser(event))
        elif event.kind == "end":
            self._end_utterance(event.silence_ms)

    def answer(self, readings: list[Transcript], speech_end: float, asr_ms: float,
                wait_ms: float) -> None:
        found = self._understood(readings, asr_ms)
        if found is None:
            if readings[0].text:
                self.status.show("ignored", reason="not_addressed")
            else:
                self.status.show("listening")
            return
        text, turn = found
        if isinstance(turn, Ignored) and turn.half_heard:
            self.status.show("ignored", reason="half_heard")
            return
        self.status.show("heard", text=text)
        if isinstance(turn, Ignored):
            self.status.show("ignored", reason="not_for_me")
            return
        if self.voice.interrupt():  # barge-in: the user talked over the answer
            self.status.show("answer_stopped")
            self.voice.finish()  # its last block played: the next answer has the speaker
        reply = turn.reply
        self.status.show("answering", intent=reply.intent)
        self.voice.say(reply.answer, self.skill.speech_rate(reply), background=True)
        started = self.voice.wait_for_first_audio()
        turn.timings_ms["endpoint_wait"] = round(wait_ms, 1)
        if started is not None:
            turn.timings_ms["to_first_audio"] = round((started - speech_end) * 1000, 1)
        report(turn, self.args.json)
        if self.log:
            self.log.write(turn)
        self.awake = False
        self.status.show("listening")

    def _understood(self, readings: list[Transcript], asr_ms: float) -> tuple[str, object] | None:
        """The words and turn of the first of `readings` (the recogniser's; in a barge-in, then
        the command listener's) that is made out, else of the last addressed to the skill;
        None if none was."""
        found = None
        for transcript in readings:
            text = self._addressed(transcript.text)
            if text is None:
                continue
            # Over the answer or its echo, what is not made out for sure is what the canceller
            # left of the echo: the user speaking over it (a barge-in, a quick "yes") is made
            # out; a half-heard "ow" is not answered.
            turn = self.skill.heard(self.conversation, replace(transcript, text=text), asr_ms,
                                    over_answer=self.over_answer, talked_over=self.talked_over,
                                    addressed=bool(self.args.wake))
            found = text, turn
            log.debug('heard "%s" (confidence %.2f) over the answer: %s', text,
                      transcript.confidence or 0.0, self.over_answer)
            if not (isinstance(turn, Ignored) and turn.half_heard):
                break
            log.debug('half heard over the answer: "%s" (confidence %.2f)', text,
                      transcript.confidence or 0.0)
        return found

    def _addressed(self, transcript: str) -> str | None:
        """The words meant for the skill, or None when the wake phrase is required but absent."""
        if not transcript:
            return None
        if not self.args.wake or self.awake or self.conversation.awaiting_answer:
            return transcript
        rest = _strip_wake(transcript, self.args.wake)
        if rest == "":
            self.awake = True
            return None
        return rest
