"""`voiceskill serve`: the skill as a Wyoming service, for Home Assistant Assist.

One socket offers two programs, in the shape of the Wyoming reference servers:

- handle, a conversation agent: `transcript` -> `handled` with the answer. Home Assistant opens
  a new connection for every utterance and puts its `conversation_id` in the context, so the
  conversations live in a `ConversationStore` keyed by that id.
- asr, the domain recogniser: `transcribe`, `audio-start`, `audio-chunk`..., `audio-stop` ->
  `transcript`. Audio of any rate, width and channel count is converted to 16 kHz mono, and the
  confidence gate is applied here, because Home Assistant hands the agent only the words.

Peers are not trusted: an event is size-checked before it is read, connections are capped,
and a client that stops sending is disconnected. Blocking work (matching, recognition) runs
in threads so one slow turn never stalls the other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    HandleModel,
    HandleProgram,
    Info,
)
from wyoming.server import AsyncEventHandler, AsyncServer, AsyncStdioServer, AsyncTcpServer

from voiceskill import __version__
from voiceskill.asr import MAX_TURN_S
from voiceskill.audio import SAMPLE_RATE
from voiceskill.dialogue import Conversation
from voiceskill.errors import UserError
from voiceskill.nlu import MAX_CHARACTERS
from voiceskill.pipeline import Skill, TurnRecord

LANGUAGE = "en"
MAX_ID_CHARS = 128
ATTRIBUTION = Attribution(name="voiceskill", url="")
ENGINE_ATTRIBUTION = {
    "pocketsphinx": Attribution(name="CMU Sphinx", url="https://github.com/cmusphinx/pocketsphinx"),
    "vosk": Attribution(name="Alpha Cephei", url="https://alphacephei.com/vosk/"),
}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one peer may cost the server."""

    max_data_bytes: int = 64 * 1024
    """JSON data of one event (a transcript and its context are far smaller)."""
    max_payload_bytes: int = 1024 * 1024
    """Binary payload of one event: one second of 48 kHz stereo 32-bit audio is 384 kB."""
    max_connections: int = 16
    idle_timeout_s: float | None = 30.0
    """A client silent this long mid-conversation with the server is stuck: disconnected."""
    conversation_ttl_s: float = 300.0
    """Home Assistant's chat session also lasts five minutes after the last turn."""
    max_conversations: int = 256


# --- conversations ----------------------------------------------------------------------------


@dataclass
class _Held:
    conversation: Conversation
    lock: threading.Lock
    last_used: float


class ConversationStore:
    """Conversations by id: each kept `ttl_s` after its last turn, at most `max_size` of them
    (the least recently used goes first), dropped as soon as one ends (goodbye).

    Turns of one conversation are serialised by a lock of its own, so two connections
    carrying the same id cannot interleave inside the dialogue."""

    def __init__(self, factory: Callable[[], Conversation], ttl_s: float, max_size: int,
                 clock: Callable[[], float] = time.monotonic):
        self._factory = factory
        self._ttl_s = ttl_s
        self._max_size = max_size
        self._clock = clock
        self._held: OrderedDict[str, _Held] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._held)

    def __contains__(self, conversation_id: str) -> bool:
        with self._lock:
            self._expire(self._clock())
            return conversation_id in self._held

    @contextlib.contextmanager
    def session(self, conversation_id: str) -> Iterator[Conversation]:
        """The conversation for this id (a fresh one if unknown or expired), held for one turn."""
        held = self._check_out(conversation_id)
        with held.lock:
            try:
                yield held.conversation
            finally:
                self._check_in(conversation_id, held)

    def _check_out(self, conversation_id: str) -> _Held:
        with self._lock:
            now = self._clock()
            self._expire(now)
            held = self._held.get(conversation_id)
            if held is None:
                held = _Held(self._factory(), threading.Lock(), now)
                self._held[conversation_id] = held
                while len(self._held) > self._max_size:
                    self._held.popitem(last=False)
            self._touch(conversation_id, held, now)
            return held

    def _check_in(self, conversation_id: str, held: _Held) -> None:
        with self._lock:
            if self._held.get(conversation_id) is not held:
                return  # evicted meanwhile; the turn was still answered
            if held.conversation.ended:
                del self._held[conversation_id]
            else:
                self._touch(conversation_id, held, self._clock())

    def _touch(self, conversation_id: str, held: _Held, now: float) -> None:
        held.last_used = now
        self._held.move_to_end(conversation_id)

    def _expire(self, now: float) -> None:
        while self._held:
            oldest_id, oldest = next(iter(self._held.items()))
            if now - oldest.last_used < self._ttl_s:
                return
            del self._held[oldest_id]


# --- the service ------------------------------------------------------------------------------


class SkillService:
    """What all connections share: the skill, the conversations, the one recogniser."""

    def __init__(self, skill: Skill, limits: Limits | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.skill = skill
        self.limits = limits or Limits()
        self.conversations = ConversationStore(
            skill.conversation, self.limits.conversation_ttl_s, self.limits.max_conversations,
            clock,
        )
        self.open_connections = 0
        self._recognizer_lock = threading.Lock()  # one decoder: one utterance at a time

    def info(self) -> Info:
        """What `describe` answers: a conversation agent, and the recogniser if there is one."""
        handle = HandleProgram(
            name="voiceskill", attribution=ATTRIBUTION, installed=True, version=__version__,
            description="Answers questions about muscle twitches, spasms and when to see a doctor",
            models=[HandleModel(
                name="twitch-and-spasm", attribution=ATTRIBUTION, installed=True,
                version=__version__, languages=[LANGUAGE],
                description="Dialogue tree with triage questions (general information only)",
            )],
        )
        recognizer = self.skill.recognizer
        if recognizer is None:
            return Info(handle=[handle])
        asr = AsrProgram(
            name="voiceskill-asr", attribution=ATTRIBUTION, installed=True, version=__version__,
            description="Speech recognition adapted to the skill's questions",
            models=[AsrModel(
                name=recognizer.name, installed=True, version=None, languages=[LANGUAGE],
                attribution=ENGINE_ATTRIBUTION.get(recognizer.name, ATTRIBUTION),
                description=f"{recognizer.name} with a domain language model",
            )],
        )
        return Info(asr=[asr], handle=[handle])

    def answer(self, conversation_id: str, text: str) -> tuple[TurnRecord, bool]:
        """One typed turn of that conversation, and whether it now awaits an answer."""
        with self.conversations.session(conversation_id) as conversation:
            turn = self.skill.text_turn(conversation, text)
            return turn, conversation.awaiting_answer

    def transcribe(self, samples: np.ndarray) -> str:
        """Recognise one utterance (16 kHz mono int16); "" when the recogniser was unsure."""
        recognizer = self.skill.recognizer
        if recognizer is None:
            raise RuntimeError("this server has no recogniser")
        step = SAMPLE_RATE // 10
        with self._recognizer_lock:
            recognizer.start_utterance()
            for start in range(0, len(samples), step):
                recognizer.feed(samples[start : start + step])
            transcript = recognizer.end_utterance()
        return self.skill.screen(transcript)


# --- reading events within limits ------------------------------------------------------------


class ProtocolViolation(Exception):
    """The peer sent something the server refuses; str() is the one line that is logged."""


async def read_event(reader: asyncio.StreamReader, limits: Limits) -> Event | None:
    """The next event, or None at the end of the stream. Unlike wyoming's own reader, the
    declared lengths are checked before anything that large is read."""
    try:
        line = await reader.readline()
    except ValueError:  # the stream's line limit (64 KiB) was exceeded
        raise ProtocolViolation("event header too long") from None
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError:
        raise ProtocolViolation("event header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolViolation("event header has no type")
    data_length = _length(header, "data_length", limits.max_data_bytes)
    payload_length = _length(header, "payload_length", limits.max_payload_bytes)
    data = header.get("data") or {}
    try:
        if data_length:
            data.update(json.loads(await reader.readexactly(data_length)))
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    except (ValueError, TypeError, AttributeError):
        raise ProtocolViolation(f"{header['type']} event has malformed data") from None
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict, key: str, limit: int) -> int:
    value = header.get(key) or 0
    if not isinstance(value, int) or value < 0:
        raise ProtocolViolation(f"{key} is not a byte count")
    if value > limit:
        raise ProtocolViolation(f"{header['type']} event {key} {value} exceeds {limit} bytes")
    return value


# --- one connection --------------------------------------------------------------------------


class AudioIntake:
    """One utterance's audio, converted as it arrives to 16 kHz mono int16, at most MAX_TURN_S
    (the rest is dropped, as `replay` does, so memory stays bounded)."""

    def __init__(self) -> None:
        self._converter = AudioChunkConverter(rate=SAMPLE_RATE, width=2, channels=1)
        self._parts: list[np.ndarray] = []
        self._room = int(MAX_TURN_S * SAMPLE_RATE)

    def add(self, event: Event) -> None:
        try:
            chunk = AudioChunk.from_event(event)
            _check_format(chunk)
            converted = self._converter.convert(chunk).audio
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolViolation(f"unusable audio chunk ({exc})") from None
        samples = np.frombuffer(converted, dtype="<i2")[: self._room]
        self._room -= len(samples)
        self._parts.append(samples)

    def samples(self) -> np.ndarray:
        return np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.int16)


def _check_format(chunk: AudioChunk) -> None:
    if not (1000 <= chunk.rate <= 384_000 and chunk.width in (1, 2, 3, 4)
            and 1 <= chunk.channels <= 8):
        raise ValueError(f"{chunk.rate} Hz, {chunk.width} bytes, {chunk.channels} channels")
    if len(chunk.audio) % (chunk.width * chunk.channels):
        raise ValueError("payload is not a whole number of frames")


class SkillHandler(AsyncEventHandler):
    """One client connection: describe, handle a transcript, or transcribe audio."""

    def __init__(self, service: SkillService, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        super().__init__(reader, writer)
        self.service = service
        self._audio: AudioIntake | None = None

    async def run(self) -> None:
        """Read events within the limits until the client is done, stuck or misbehaving."""
        service, limits = self.service, self.service.limits
        if service.open_connections >= limits.max_connections:
            log.warning("refused a connection: %d already open", service.open_connections)
            await self._close_with_error("too many connections", "busy")
            return
        service.open_connections += 1
        try:
            await self._serve(limits)
        except ProtocolViolation as exc:
            log.warning("refused an event: %s; closing that connection", exc)
            await self._close_with_error(str(exc), "refused")
        except ConnectionError:
            log.debug("client went away")
        finally:
            service.open_connections -= 1
            self.writer.close()

    async def _serve(self, limits: Limits) -> None:
        while True:
            try:
                event = await asyncio.wait_for(read_event(self.reader, limits),
                                               timeout=limits.idle_timeout_s)
            except asyncio.TimeoutError:
                log.info("closed a connection silent for %s s", limits.idle_timeout_s)
                return
            if event is None or not await self.handle_event(event):
                return

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.service.info().event())
            return True
        if Transcript.is_type(event.type):
            await self._handle(event)
            return False
        if self.service.skill.recognizer is not None:
            return await self._transcribe_event(event)
        log.debug("ignored a %s event", event.type)
        return True

    async def _handle(self, event: Event) -> None:
        text = event.data.get("text")
        if not isinstance(text, str):
            raise ProtocolViolation("transcript event has no text")
        if len(text) > MAX_CHARACTERS:
            raise ProtocolViolation(f"transcript longer than {MAX_CHARACTERS} characters")
        context = event.data.get("context")
        context = dict(context) if isinstance(context, dict) else {}
        conversation_id = context.get("conversation_id")
        if not (isinstance(conversation_id, str) and 0 < len(conversation_id) <= MAX_ID_CHARS):
            conversation_id = uuid.uuid4().hex
        turn, awaiting = await asyncio.to_thread(self.service.answer, conversation_id, text)
        reply = turn.reply
        log.debug("conversation %s: %s -> %s", conversation_id[-6:], reply.intent, reply.node)
        # Home Assistant does not read this yet (see README); it costs nothing to say it.
        context.update(conversation_id=conversation_id, continue_conversation=awaiting)
        await self.write_event(Handled(text=reply.answer, context=context).event())

    async def _transcribe_event(self, event: Event) -> bool:
        if Transcribe.is_type(event.type) or AudioStart.is_type(event.type):
            self._audio = AudioIntake()
        elif AudioChunk.is_type(event.type):
            self._audio = self._audio or AudioIntake()
            self._audio.add(event)
        elif AudioStop.is_type(event.type):
            samples = self._audio.samples() if self._audio else np.zeros(0, dtype=np.int16)
            self._audio = None
            try:
                text = await asyncio.to_thread(self.service.transcribe, samples)
            except RuntimeError as exc:  # the engine failed; the next utterance restarts it
                log.warning("recognition failed (%s)", exc)
                await self.write_event(Error(text="recognition failed", code="asr").event())
                return False
            await self.write_event(Transcript(text=text, language=LANGUAGE).event())
            return False
        else:
            log.debug("ignored a %s event", event.type)
        return True

    async def _close_with_error(self, text: str, code: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.write_event(Error(text=text, code=code).event())
        self.writer.close()


# --- running ----------------------------------------------------------------------------------


async def start_server(service: SkillService, uri: str) -> AsyncServer:
    """Listen on a tcp:// or unix:// URI without blocking; stop it with `await server.stop()`."""
    server = _server_for(uri)
    try:
        await server.start(partial(SkillHandler, service))
    except OSError as exc:
        raise UserError(f"cannot listen on {uri}: {exc.strerror or exc}") from None
    return server


async def serve(service: SkillService, uri: str, zeroconf_name: str | None = None) -> None:
    """Serve until SIGTERM or SIGINT (or until stdin closes, for stdio://)."""
    probe = _server_for(uri)
    if isinstance(probe, AsyncStdioServer):  # a private pipe to a trusting parent: no limits
        log.info("serving on stdio")
        await probe.run(partial(SkillHandler, service))
        return
    if zeroconf_name and not isinstance(probe, AsyncTcpServer):
        raise UserError("--zeroconf needs a tcp:// URI")
    server = await start_server(service, uri)
    announcer = await _announce(server, zeroconf_name) if zeroconf_name else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("serving on %s", uri)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if announcer is not None:
            await announcer.async_close()
        await server.stop()
    log.info("stopped")


def _server_for(uri: str) -> AsyncServer:
    try:
        return AsyncServer.from_uri(uri)
    except ValueError as exc:
        raise UserError(f"bad --uri {uri!r}: {exc}") from None


async def _announce(server: AsyncTcpServer, name: str):
    """Announce the service over mDNS as the Wyoming servers do, so Home Assistant finds it.

    Returns the running AsyncZeroconf (closed on shutdown), or None when it cannot run here."""
    assert isinstance(server, AsyncTcpServer)
    try:
        from wyoming.zeroconf import HomeAssistantZeroconf
    except ImportError:
        raise UserError("--zeroconf needs the zeroconf package (pip install zeroconf)") from None
    host = None if server.host in ("0.0.0.0", "", "::") else server.host
    if host and host.startswith("127."):
        log.warning("announcing %s: only this machine can reach it", host)
    try:
        announcer = HomeAssistantZeroconf(port=server.port, name=name, host=host)
        await announcer.register_server()
    except OSError as exc:
        log.warning("cannot announce the service (%s); serving without zeroconf", exc)
        return None
    log.info("announced as %s._wyoming._tcp.local.", name)
    return announcer._aiozc  # the helper has no close(); its AsyncZeroconf sends the goodbye
