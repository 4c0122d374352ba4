"""`voiceskill serve`: the skill as a Wyoming service, for Home Assistant Assist.

One socket offers two programs, in the shape of the Wyoming reference servers:

- handle, a conversation agent: `transcript` -> `handled` with the answer. Home Assistant opens
  a new connection for every utterance and puts its `conversation_id` in the context, so the
  conversations live in a `ConversationStore` keyed by that id and by the peer that sent it
  (its address, not its port): another client using the same id gets a conversation of its
  own, and a client flooding new ids pushes out only its own.
- asr, the domain recogniser: `transcribe`, `audio-start`, `audio-chunk`..., `audio-stop` ->
  `transcript`. Audio of any rate, width and channel count is converted to 16 kHz mono, and the
  confidence gate is applied here, because Home Assistant hands the agent only the words.

Peers are not trusted: an event is size-checked before it is read, connections are capped,
a client that stops sending or stops reading is disconnected (and, when every slot is taken, the
one stalled longest makes room for a newcomer), what a peer chose is shortened and escaped before
it is logged, and log lines go through a thread so a stderr nobody reads never stalls the
server. Blocking work (matching, recognition) runs in threads so one slow turn never stalls the
other connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import queue
import signal
import socket
import stat
import sys
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from logging.handlers import QueueHandler
from pathlib import Path
from urllib.parse import urlparse

from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.handle import Handled, NotHandled
from wyoming.info import (
    AsrModel,
    AsrProgram,
    Attribution,
    Describe,
    HandleModel,
    HandleProgram,
    Info,
)
from wyoming.server import (
    AsyncEventHandler,
    AsyncServer,
    AsyncStdioServer,
    AsyncTcpServer,
    AsyncUnixServer,
)

from voiceskill import __version__
from voiceskill.asr import Clip, recognize
from voiceskill.dialogue import Conversation
from voiceskill.errors import UserError
from voiceskill.pipeline import Skill, TurnRecord, text_problem

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
    write_timeout_s: float | None = 30.0
    """A client that has not taken a reply in this long is not reading: disconnected."""
    max_connection_s: float | None = 300.0
    """No connection lives longer (Home Assistant opens one per utterance of at most 30 s)."""
    make_room_after_s: tuple[float, float] = (1.0, 5.0)
    """When every connection is taken, a newcomer replaces the one stalled longest: blocked
    writing to a client that does not read for at least the first figure, or waiting for a
    client that sends nothing for at least the second."""
    max_audio_chunks: int = 100_000
    """Chunks per utterance (30 s of audio is 300 chunks as satellites send it)."""
    max_events: int = 200
    """Events other than audio chunks per connection (Home Assistant sends two or three):
    a client flooding describes, whose replies fill the kernel's buffers long before
    anything looks stalled, is cut off after these."""
    conversation_ttl_s: float = 300.0
    """Home Assistant's chat session also lasts five minutes after the last turn."""
    max_conversations: int = 256
    """In all; when full, the peer holding the most gives up its least recently used."""


# --- conversations ----------------------------------------------------------------------------


@dataclass
class _Held:
    conversation: Conversation
    lock: threading.Lock
    last_used: float


Key = tuple[str, str]
"""(peer, conversation id): an id names a conversation only for the peer that made it."""


class ConversationStore:
    """Conversations by peer and id: each kept `ttl_s` after its last turn, dropped as soon as
    one ends (goodbye), at most `max_size` of them. When full, the least recently used
    conversation of the peer holding the most goes, so a peer flooding new ids evicts its own
    and never another peer's (a user mid-triage keeps their question).

    Turns of one conversation are serialised by a lock of its own, so two connections
    carrying the same id cannot interleave inside the dialogue."""

    def __init__(self, factory: Callable[[], Conversation], ttl_s: float, max_size: int,
                 clock: Callable[[], float] = time.monotonic):
        self._factory = factory
        self._ttl_s = ttl_s
        self._max_size = max_size
        self._clock = clock
        self._held: OrderedDict[Key, _Held] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._held)

    def __contains__(self, key: Key) -> bool:
        with self._lock:
            self._expire(self._clock())
            return key in self._held

    @contextlib.contextmanager
    def session(self, peer: str, conversation_id: str) -> Iterator[Conversation]:
        """This peer's conversation with this id (a fresh one if unknown or expired), held for
        one turn."""
        key = (peer, conversation_id)
        held = self._check_out(key)
        with held.lock:
            try:
                yield held.conversation
            finally:
                self._check_in(key, held)

    def _check_out(self, key: Key) -> _Held:
        with self._lock:
            now = self._clock()
            self._expire(now)
            held = self._held.get(key)
            if held is None:
                held = _Held(self._factory(), threading.Lock(), now)
                self._held[key] = held
                while len(self._held) > self._max_size:
                    self._evict()
            self._touch(key, held, now)
            return held

    def _evict(self) -> None:
        """Drop the least recently used conversation of the peer holding the most."""
        held_by = Counter(peer for peer, _ in self._held)
        most = max(held_by.values())
        del self._held[next(key for key in self._held if held_by[key[0]] == most)]

    def _check_in(self, key: Key, held: _Held) -> None:
        with self._lock:
            if self._held.get(key) is not held:
                return  # evicted meanwhile; the turn was still answered
            if held.conversation.ended:
                del self._held[key]
            else:
                self._touch(key, held, self._clock())

    def _touch(self, key: Key, held: _Held, now: float) -> None:
        held.last_used = now
        self._held.move_to_end(key)

    def _expire(self, now: float) -> None:
        while self._held:
            oldest_id, oldest = next(iter(self._held.items()))
            if now - oldest.last_used < self._ttl_s:
                return
            del self._held[oldest_id]


def _info(skill: Skill) -> Info:
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
    recognizer = skill.recognizer
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
        self.connections: set[SkillHandler] = set()
        self._recognizer_lock = threading.Lock()  # one decoder: one utterance at a time
        self.info = _info(skill)  # what `describe` answers, the same every time

    @property
    def open_connections(self) -> int:
        return len(self.connections)

    def make_room(self) -> bool:
        """Close the connection stalled longest, if one has been stalled long enough; whether
        a slot is now free."""
        now = time.monotonic()
        write_s, read_s = self.limits.make_room_after_s
        stalled = []
        for handler in self.connections:
            if handler.waiting is None:
                continue
            kind, since = handler.waiting
            if now - since >= (write_s if kind == "write" else read_s):
                stalled.append((kind == "write", now - since, handler))
        if not stalled:
            return False
        not_reading, waited, victim = max(stalled, key=lambda item: item[:2])
        why = "was not reading its replies" if not_reading else "was silent"
        log.info("closed a connection that %s for %.0f s, to make room", why, waited)
        victim.abort()
        return True

    def answer(self, peer: str, conversation_id: str, text: str) -> tuple[TurnRecord, bool]:
        """One typed turn of that peer's conversation, and whether it now awaits an answer."""
        with self.conversations.session(peer, conversation_id) as conversation:
            turn = self.skill.text_turn(conversation, text)
            return turn, conversation.awaiting_answer

    def transcribe(self, clip: Clip) -> str:
        """Recognise one utterance; "" when the recogniser was unsure."""
        recognizer = self.skill.recognizer
        if recognizer is None:
            raise RuntimeError("this server has no recogniser")
        with self._recognizer_lock:  # screen() too: a cascade's second opinion reads this audio
            return self.skill.screen(recognize(recognizer, clip.chunks()))


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
    header = _json_object(line)
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolViolation("event header has no type" if header is not None
                                else "event header is not JSON")
    kind = shown(header["type"])
    data_length = _length(header, kind, "data_length", limits.max_data_bytes)
    payload_length = _length(header, kind, "payload_length", limits.max_payload_bytes)
    data = header.get("data")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ProtocolViolation(f"{kind} event has malformed data")
    try:
        if data_length:
            more = _json_object(await reader.readexactly(data_length))
            if not isinstance(more, dict):
                raise ProtocolViolation(f"{kind} event has malformed data")
            data.update(more)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None
    return Event(type=header["type"], data=data, payload=payload)


def _json_object(raw: bytes) -> object | None:
    """Parsed strict JSON (no NaN or Infinity, which strict peers cannot read back when they
    are echoed in a context), or None when it is not JSON or nested too deep to parse."""
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):
        return None


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def shown(text: str, limit: int = 40) -> str:
    """Peer-chosen text as it may appear in a log line: escaped (no newline can start a forged
    line) and at most `limit` characters."""
    escaped = ascii(text)[1:-1]
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def _length(header: dict, kind: str, key: str, limit: int) -> int:
    value = header.get(key) or 0
    if not isinstance(value, int) or value < 0:
        raise ProtocolViolation(f"{key} is not a byte count")
    if value > limit:
        raise ProtocolViolation(f"{kind} event {key} {shown(str(value))} exceeds {limit} bytes")
    return value


# --- one connection --------------------------------------------------------------------------


class AudioIntake:
    """One utterance's audio events, taken into the recogniser's `Clip` (which converts and
    bounds them); at most `max_chunks` chunks are taken."""

    def __init__(self, max_chunks: int = Limits.max_audio_chunks) -> None:
        self.clip = Clip()
        self._chunks_left = max_chunks

    def add(self, event: Event) -> None:
        if self.clip.full:
            return  # the utterance is full: the rest is not even converted
        self._chunks_left -= 1
        if self._chunks_left < 0:
            raise ProtocolViolation("too many audio chunks in one utterance")
        try:
            chunk = AudioChunk.from_event(event)
            self.clip.add(chunk.audio, chunk.rate, chunk.width, chunk.channels)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolViolation(f"unusable audio chunk ({_chunk_problem(exc)})") from None


def _chunk_problem(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no {shown(str(exc.args[0]))}"
    return shown(str(exc), 80)


def _peer(writer: asyncio.StreamWriter) -> str:
    """Who a connection's conversations belong to: a tcp client's address (not its port, as
    Home Assistant opens a connection per utterance); everyone on a unix socket or stdio is
    this machine."""
    address = writer.get_extra_info("peername")
    return str(address[0]) if isinstance(address, tuple) else "local"


class _Stalled(Exception):
    """The client did not take a reply within the write timeout."""


class SkillHandler(AsyncEventHandler):
    """One client connection: describe, handle a transcript, or transcribe audio."""

    def __init__(self, service: SkillService, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        super().__init__(reader, writer)
        self.service = service
        self.peer = _peer(writer)
        self._audio: AudioIntake | None = None
        self.waiting: tuple[str, float] | None = None
        """("read" or "write", since when) while blocked on the client, else None."""
        self.refused = False

    def abort(self) -> None:
        """Drop the connection now (its slot is free at once); its task then ends."""
        self.service.connections.discard(self)
        transport = getattr(self.writer, "transport", None)
        if transport is not None:
            transport.abort()

    async def run(self) -> None:
        """Read events within the limits until the client is done, stuck or misbehaving."""
        service, limits = self.service, self.service.limits
        if service.open_connections >= limits.max_connections and not service.make_room():
            log.warning("refused a connection: %d already open", service.open_connections)
            await self._close_with_error("too many connections", "busy")
            return
        service.connections.add(self)
        try:
            await self._serve(limits)
        except ProtocolViolation as exc:
            self.refused = True
            service.connections.discard(self)  # the slot is free while the error goes out
            log.warning("refused an event: %s; closing that connection", exc)
            await self._close_with_error(str(exc), "refused")
        except _Stalled:
            log.info("closed a connection that took no reply for %s s", limits.write_timeout_s)
            self.abort()
        except ConnectionError:
            log.debug("client went away")
        finally:
            service.connections.discard(self)
            self.writer.close()

    async def _serve(self, limits: Limits) -> None:
        ends = (time.monotonic() + limits.max_connection_s
                if limits.max_connection_s is not None else None)
        events = 0
        while True:
            timeout = limits.idle_timeout_s
            if ends is not None:
                left = ends - time.monotonic()
                if left <= 0:
                    log.info("closed a connection open for %s s", limits.max_connection_s)
                    return
                timeout = left if timeout is None else min(timeout, left)
            self.waiting = ("read", time.monotonic())
            try:
                event = await asyncio.wait_for(read_event(self.reader, limits), timeout=timeout)
            except asyncio.TimeoutError:
                if ends is not None and time.monotonic() >= ends:
                    log.info("closed a connection open for %s s", limits.max_connection_s)
                else:
                    log.info("closed a connection that sent nothing for %s s",
                             limits.idle_timeout_s)
                return
            finally:
                self.waiting = None
            if event is None:
                return
            if not AudioChunk.is_type(event.type):
                events += 1
                if events > limits.max_events:
                    raise ProtocolViolation(f"more than {limits.max_events} events on one "
                                            "connection")
            if not await self.handle_event(event):
                return

    async def write_event(self, event: Event) -> None:
        """Send an event; a client that does not take it within the write timeout is stalled
        (without a timeout, a client that never reads would hold its slot for ever)."""
        self.waiting = ("write", time.monotonic())
        try:
            await asyncio.wait_for(async_write_event(event, self.writer),
                                   timeout=self.service.limits.write_timeout_s)
        except asyncio.TimeoutError:
            raise _Stalled from None
        finally:
            self.waiting = None

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            await self.write_event(self.service.info.event())
            return True
        if Transcript.is_type(event.type):
            await self._handle(event)
            return False
        if self.service.skill.recognizer is not None:
            return await self._transcribe_event(event)
        log.debug("ignored a %s event", shown(event.type))
        return True

    async def _handle(self, event: Event) -> None:
        text = event.data.get("text")
        if not isinstance(text, str):
            raise ProtocolViolation("transcript event has no text")
        problem = text_problem(text)
        if problem:
            raise ProtocolViolation(f"transcript longer than allowed ({problem})")
        context = event.data.get("context")
        context = dict(context) if isinstance(context, dict) else {}
        conversation_id = context.get("conversation_id")
        if not (isinstance(conversation_id, str) and 0 < len(conversation_id) <= MAX_ID_CHARS):
            conversation_id = uuid.uuid4().hex
        turn, awaiting = await asyncio.to_thread(self.service.answer, self.peer,
                                                 conversation_id, text)
        reply = turn.reply
        log.debug("conversation %s: %s -> %s", conversation_id[-6:], reply.intent, reply.node)
        # Home Assistant does not read this yet (see README); it costs nothing to say it.
        context.update(conversation_id=conversation_id, continue_conversation=awaiting)
        # Not the skill's: Home Assistant may pass the request on to its own agent.
        result = Handled if turn.understood else NotHandled
        await self.write_event(result(text=reply.answer, context=context).event())

    async def _transcribe_event(self, event: Event) -> bool:
        if Transcribe.is_type(event.type) or AudioStart.is_type(event.type):
            self._audio = AudioIntake(self.service.limits.max_audio_chunks)
        elif AudioChunk.is_type(event.type):
            self._audio = self._audio or AudioIntake(self.service.limits.max_audio_chunks)
            self._audio.add(event)
        elif AudioStop.is_type(event.type):
            clip = self._audio.clip if self._audio else Clip()
            self._audio = None
            try:
                text = await asyncio.to_thread(self.service.transcribe, clip)
            except RuntimeError as exc:  # the engine failed; the next utterance restarts it
                log.warning("recognition failed (%s)", exc)
                await self.write_event(Error(text="recognition failed", code="asr").event())
                return False
            await self.write_event(Transcript(text=text, language=LANGUAGE).event())
            return False
        else:
            log.debug("ignored a %s event", shown(event.type))
        return True

    async def _close_with_error(self, text: str, code: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError, _Stalled, asyncio.TimeoutError):
            await asyncio.wait_for(self.write_event(Error(text=text, code=code).event()),
                                   timeout=5.0)
        self.writer.close()


# --- running ----------------------------------------------------------------------------------


async def start_server(service: SkillService, uri: str) -> AsyncServer:
    """Listen on a tcp:// or unix:// URI without blocking; stop it with `await server.stop()`."""
    server = _server_for(uri)
    if isinstance(server, AsyncUnixServer):
        _check_socket_path(uri, server.socket_path)
    try:
        await server.start(partial(SkillHandler, service))
    except OSError as exc:
        raise UserError(f"cannot listen on {uri}: {exc.strerror or exc}") from None
    return server


async def serve(service: SkillService, uri: str, zeroconf_name: str | None = None) -> int:
    """Serve until SIGTERM or SIGINT (or until stdin closes, for stdio://); the exit status."""
    probe = _server_for(uri)
    if zeroconf_name and not isinstance(probe, AsyncTcpServer):
        raise UserError("--zeroconf needs a tcp:// URI")
    with _log_through_a_thread():
        if isinstance(probe, AsyncStdioServer):
            return await _serve_stdio(service)
        server = await start_server(service, uri)
        if isinstance(server, AsyncTcpServer) and not _is_loopback(server.host):
            log.warning("listening on %s: anyone who can reach this machine can use it, without "
                        "a password; keep it on a trusted network", server.host or "all addresses")
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
        return 0


def _server_for(uri: str) -> AsyncServer:
    parsed = urlparse(uri)
    if parsed.scheme == "unix" and (parsed.netloc or not parsed.path):
        # unix://dir/x.sock would silently mean /x.sock (the "dir" is a host name)
        raise UserError(f"bad --uri {uri!r}: a unix socket needs its full path, "
                        f"e.g. unix:///run/user/1000/voiceskill.sock")
    try:
        return AsyncServer.from_uri(uri)
    except ValueError as exc:
        raise UserError(f"bad --uri {uri!r}: {exc}") from None


def _check_socket_path(uri: str, path: Path) -> None:
    """wyoming removes whatever is at the socket's path before binding: refuse a file that is
    not a socket, and a socket another server is still listening on."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UserError(f"cannot listen on {uri}: {exc.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise UserError(f"cannot listen on {uri}: {path} exists and is not a socket "
                        "(left as it is)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.settimeout(2.0)
        try:
            other.connect(str(path))
        except OSError:
            return  # left by a server that is gone: replaced
    raise UserError(f"cannot listen on {uri}: another server is listening there")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- stdio: one trusted parent ----------------------------------------------------------------

STDIO_LIMITS = Limits(idle_timeout_s=None, write_timeout_s=None, max_connection_s=None)
"""A parent process on the other end of a pipe: sizes are still checked, times are not."""


async def _serve_stdio(service: SkillService) -> int:
    """One connection on stdin and stdout, whatever they are (pipes, files, /dev/null): read
    and written by threads, as asyncio's pipe transports accept pipes and sockets only."""
    if sys.stdin is None or sys.stdout is None:
        raise UserError("stdio:// needs standard input and output; one of them is closed")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16)
    threading.Thread(target=_pump_input, args=(sys.stdin.fileno(), reader, loop),
                     name="voiceskill-stdin", daemon=True).start()
    stdio = SkillService(service.skill, STDIO_LIMITS)
    stdio.conversations = service.conversations
    handler = SkillHandler(stdio, reader, _FdWriter(sys.stdout.fileno()))
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, reader.feed_eof)
    log.info("serving on stdio")
    try:
        await handler.run()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    return 1 if handler.refused else 0


def _pump_input(descriptor: int, reader: asyncio.StreamReader,
                loop: asyncio.AbstractEventLoop) -> None:
    def deliver(action, *args) -> bool:
        try:
            loop.call_soon_threadsafe(action, *args)
        except RuntimeError:  # the loop has finished
            return False
        return True

    try:
        while True:
            chunk = os.read(descriptor, 65536)
            if not chunk or not deliver(reader.feed_data, chunk):
                break
    except OSError as exc:
        log.warning("cannot read standard input (%s)", exc.strerror)
    deliver(reader.feed_eof)


class _FdWriter:
    """The part of asyncio.StreamWriter the handler uses, writing a file descriptor of any kind
    from a thread."""

    def __init__(self, descriptor: int):
        self._descriptor = descriptor
        self._pending = bytearray()
        self._closed = False

    def write(self, data: bytes) -> None:
        self._pending += data

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    async def drain(self) -> None:
        data, self._pending = bytes(self._pending), bytearray()
        if data:
            await asyncio.to_thread(self._write_all, data)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._descriptor, view):]

    def close(self) -> None:
        self._closed = True

    def is_closing(self) -> bool:
        return self._closed

    def get_extra_info(self, name: str, default=None):
        return default


# --- logging that never blocks the event loop -----------------------------------------------


class _DroppingQueueHandler(QueueHandler):
    """Hands records to the writer thread; when it is this far behind, the line is dropped."""

    dropped = 0

    def enqueue(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            _DroppingQueueHandler.dropped += 1


@contextlib.contextmanager
def _log_through_a_thread(capacity: int = 1000) -> Iterator[None]:
    """Route the root logger's handlers through a thread: a stderr nobody drains (a full pipe)
    then blocks that thread, never the event loop; lines beyond `capacity` are dropped."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    lines: queue.Queue = queue.Queue(capacity)

    def write() -> None:
        while (record := lines.get()) is not None:
            for handler in handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)

    writer = threading.Thread(target=write, name="voiceskill-log", daemon=True)
    writer.start()
    relay = _DroppingQueueHandler(lines)
    root.handlers = [relay]
    try:
        yield
    finally:
        root.handlers = handlers
        with contextlib.suppress(queue.Full):
            lines.put(None, timeout=5.0)
        writer.join(timeout=5.0)


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
