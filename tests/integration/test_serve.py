"""`voiceskill serve`: the Wyoming service, talked to with the wyoming package's own client.

In-process servers on tcp and unix sockets for the protocol, a subprocess for the command
(SIGTERM, zeroconf). Real recogniser, real content, real fixture WAVs; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import csv
import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.event import Event, async_read_event, async_write_event
from wyoming.handle import Handled, NotHandled
from wyoming.info import Describe, Info

from helpers import MINIMAL, ROOT, FailsOnce
from voiceskill.asr import Transcript as Recognition
from voiceskill.asr import create_recognizer
from voiceskill.content import load_content
from voiceskill.errors import UserError
from voiceskill.pipeline import Skill
from voiceskill.serve import ConversationStore, Limits, SkillService, start_server

MANIFEST = ROOT / "audio_fixtures" / "manifest.csv"
GUARD_S = 60  # only ever reached when the behaviour under test is broken


def manifest_row(file: str) -> dict:
    with MANIFEST.open() as handle:
        return next(row for row in csv.DictReader(handle) if row["file"] == file)


@pytest.fixture(scope="module")
def skill() -> Skill:
    content = load_content()
    return Skill(content, recognizer=create_recognizer("pocketsphinx",
                                                       content.domain_sentences()))


@asynccontextmanager
async def running(service: SkillService, uri: str) -> AsyncIterator[str]:
    server = await start_server(service, uri)
    try:
        yield uri
    finally:
        await server.stop()


def free_tcp_uri() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def handled(event: Event | None) -> Handled | NotHandled:
    """The skill's reply: `handled`, or `not-handled` for what it cannot help with."""
    assert event is not None and (Handled.is_type(event.type)
                                  or NotHandled.is_type(event.type)), event
    return (Handled if Handled.is_type(event.type) else NotHandled).from_event(event)


async def ask(uri: str, text: str, conversation_id: str) -> Handled | NotHandled:
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Transcript(text, context={"conversation_id": conversation_id})
                                 .event())
        return handled(await asyncio.wait_for(client.read_event(), GUARD_S))


async def transcribe(uri: str, pcm: bytes, rate: int, width: int, channels: int) -> str:
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
        step = rate // 10 * width * channels  # 100 ms chunks, as a satellite streams them
        for start in range(0, len(pcm), step):
            chunk = AudioChunk(rate=rate, width=width, channels=channels,
                               audio=pcm[start : start + step])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        event = await asyncio.wait_for(client.read_event(), GUARD_S)
    assert Transcript.is_type(event.type), event
    return Transcript.from_event(event).text


# --- describe and handle ----------------------------------------------------------------------


def test_describe_advertises_a_conversation_agent_and_a_recogniser(skill):
    async def scenario() -> Info:
        async with running(SkillService(skill), free_tcp_uri()) as uri, \
                AsyncClient.from_uri(uri) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await asyncio.wait_for(client.read_event(), GUARD_S))

    info = asyncio.run(scenario())
    (handle,) = info.handle
    (asr,) = info.asr
    for program in (handle, asr):
        assert program.installed
        assert [model.languages for model in program.models] == [["en"]]
        assert all(model.installed for model in program.models)
    assert asr.models[0].name == "pocketsphinx"


def test_describe_gives_the_same_info_built_once(skill):
    service = SkillService(skill)

    async def scenario() -> list[Info]:
        async with running(service, free_tcp_uri()) as uri, \
                AsyncClient.from_uri(uri) as client:
            described = []
            for _ in range(2):
                await client.write_event(Describe().event())
                described.append(Info.from_event(await asyncio.wait_for(client.read_event(),
                                                                         GUARD_S)))
            return described

    first, again = asyncio.run(scenario())
    assert first == again == service.info


def test_what_the_skill_cannot_help_with_is_not_handled(skill, tmp_path):
    """Home Assistant always got `handled`, so it never passed an out-of-domain request on to
    its own agent; a sign in words no intent has is still the skill's."""
    async def scenario() -> list[Handled | NotHandled]:
        async with running(SkillService(skill), f"unix://{tmp_path}/s.sock") as uri:
            return [await ask(uri, text, "hall") for text in (
                "turn on the kitchen lights", "how do I stop a cramp",
                "what are the signs of a stroke")]

    lights, cramp, stroke = asyncio.run(scenario())
    assert isinstance(lights, NotHandled)
    assert lights.text == skill.content.messages["fallback"]
    assert lights.context["conversation_id"] == "hall"
    assert isinstance(cramp, Handled) and isinstance(stroke, Handled)
    assert "emergency" in stroke.text


def test_a_triage_conversation_spans_separate_connections_by_conversation_id(skill, tmp_path):
    service = SkillService(skill)

    async def scenario() -> list[Handled]:
        async with running(service, f"unix://{tmp_path}/s.sock") as uri:
            first = await ask(uri, "should I see a doctor about my twitching", "kitchen")
            other = await ask(uri, "how do I prevent cramps", "bedroom")  # in between
            second = await ask(uri, "no", "kitchen")
            third = await ask(uri, "yes it's lasted two weeks", "kitchen")
            return [first, other, second, third]

    first, other, second, third = asyncio.run(scenario())
    assert first.text.endswith("?") and first.context["continue_conversation"] is True
    assert first.context["conversation_id"] == "kitchen"
    assert "drinking enough water" in other.text
    assert second.context["continue_conversation"] is True
    assert "doctor" in third.text and third.context["continue_conversation"] is False
    assert ("local", "kitchen") in service.conversations
    assert ("local", "bedroom") in service.conversations


def test_goodbye_drops_the_conversation(skill, tmp_path):
    service = SkillService(skill)

    async def scenario() -> Handled:
        async with running(service, f"unix://{tmp_path}/s.sock") as uri:
            await ask(uri, "should I see a doctor about my twitching", "hall")
            await ask(uri, "goodbye", "hall")
            assert ("local", "hall") not in service.conversations
            return await ask(uri, "no", "hall")  # a fresh conversation: no pending question

    after = asyncio.run(scenario())
    assert after.text == skill.content.messages["no_context"]


async def ask_from(source: str, uri: str, text: str,
                   conversation_id: str) -> Handled | NotHandled:
    """A turn from another machine (another loopback address: 127.0.0.2)."""
    host, port = uri.removeprefix("tcp://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), local_addr=(source, 0))
    try:
        await async_write_event(
            Transcript(text, context={"conversation_id": conversation_id}).event(), writer)
        event = await asyncio.wait_for(async_read_event(reader), GUARD_S)
    finally:
        writer.close()
    return handled(event)


def test_a_conversation_id_from_another_peer_is_a_conversation_of_its_own(skill):
    service = SkillService(skill)

    async def scenario() -> list[Handled]:
        async with running(service, free_tcp_uri()) as uri:
            question = await ask_from("127.0.0.1", uri, "should I see a doctor about my "
                                      "twitching", "kitchen")
            intruder_repeat = await ask_from("127.0.0.2", uri, "repeat", "kitchen")
            intruder_yes = await ask_from("127.0.0.2", uri, "yes", "kitchen")
            answer = await ask_from("127.0.0.1", uri, "no", "kitchen")
            return [question, intruder_repeat, intruder_yes, answer]

    question, intruder_repeat, intruder_yes, answer = asyncio.run(scenario())
    assert question.text.endswith("?")
    assert question.text not in intruder_repeat.text  # B never hears A's question
    assert intruder_yes.text == skill.content.messages["no_context"]
    assert answer.context["continue_conversation"] is True  # A's triage goes on: B changed nothing
    assert answer.text.endswith("?") and answer.text != question.text


def test_a_peer_flooding_new_ids_cannot_evict_another_peers_conversation(skill):
    service = SkillService(skill, Limits(max_conversations=8))

    async def scenario() -> Handled:
        async with running(service, free_tcp_uri()) as uri:
            await ask_from("127.0.0.1", uri, "should I see a doctor about my twitching", "victim")
            for flood in range(20):
                await ask_from("127.0.0.2", uri, "hello", f"flood-{flood}")
            return await ask_from("127.0.0.1", uri, "no", "victim")

    answer = asyncio.run(scenario())
    assert answer.context["continue_conversation"] is True, answer.text
    assert len(service.conversations) == 8
    assert ("127.0.0.1", "victim") in service.conversations


# --- the conversation store (no network, a clock of our own) ----------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_conversation_expires_after_its_time_to_live(skill):
    clock = Clock()
    store = ConversationStore(skill.conversation, ttl_s=300, max_size=10, clock=clock)
    with store.session("p", "a") as conversation:
        skill.text_turn(conversation, "should I see a doctor about my twitching")
    clock.now += 299
    with store.session("p", "a") as conversation:
        assert conversation.awaiting_answer  # still the same triage
    clock.now += 300
    assert ("p", "a") not in store
    with store.session("p", "a") as conversation:
        assert not conversation.awaiting_answer  # started afresh


def test_the_store_keeps_at_most_its_size_dropping_the_least_recently_used(skill):
    clock = Clock()
    store = ConversationStore(skill.conversation, ttl_s=300, max_size=2, clock=clock)
    for conversation_id in ("a", "b", "a", "c"):
        clock.now += 1
        with store.session("p", conversation_id):
            pass
    assert len(store) == 2
    assert ("p", "a") in store and ("p", "c") in store and ("p", "b") not in store


def test_a_full_store_evicts_from_the_peer_holding_the_most(skill):
    clock = Clock()
    store = ConversationStore(skill.conversation, ttl_s=300, max_size=4, clock=clock)
    turns = [("home", "a"), ("flood", "1"), ("flood", "2"), ("home", "b"), ("flood", "3"),
             ("flood", "4"), ("flood", "5")]
    for key in turns:
        clock.now += 1
        with store.session(*key):
            pass
    # home's two, the oldest of all, stay: the flooder lost its own oldest each time
    assert [key for key in turns if key in store] == [
        ("home", "a"), ("home", "b"), ("flood", "4"), ("flood", "5")]


# --- speech to text ---------------------------------------------------------------------------

QUESTION = "audio_fixtures/clean/spasm_relief__1__flite-slt.wav"


@pytest.mark.parametrize(("rate", "channels"), [(44_100, 2), (16_000, 1), (16_000, 3), (22_050, 6)])
def test_asr_converts_any_format_and_recognises_a_fixture(skill, tmp_path, rate, channels):
    audio, source_rate = sf.read(ROOT / QUESTION, dtype="float32")
    resampled = soxr.resample(audio, source_rate, rate) if rate != source_rate else audio
    frames = np.repeat(resampled[:, None], channels, axis=1)
    pcm = (np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes()

    async def scenario() -> str:
        async with running(SkillService(skill), f"unix://{tmp_path}/s.sock") as uri:
            return await transcribe(uri, pcm, rate, 2, channels)

    text = asyncio.run(scenario())
    assert skill.matcher.understand(text).intent == manifest_row(QUESTION)["intent"], text


def test_asr_applies_the_confidence_gate(skill, tmp_path):
    """Babble at 10 dB: the recogniser hears a different question, unsure; nothing goes on."""
    misheard = ROOT / "audio_fixtures/noisy/babble_10/doctor_visit__1__flite-slt.wav"
    audio, rate = sf.read(misheard, dtype="int16")

    async def scenario() -> str:
        async with running(SkillService(skill), f"unix://{tmp_path}/s.sock") as uri:
            return await transcribe(uri, audio.astype("<i2").tobytes(), rate, 2, 1)

    assert asyncio.run(scenario()) == ""


def test_a_recogniser_failure_is_an_error_event_and_the_next_utterance_works(skill, tmp_path):
    failing = Skill(skill.content, recognizer=FailsOnce(skill.recognizer, utterance=1))
    audio, rate = sf.read(ROOT / QUESTION, dtype="int16")
    pcm = audio.astype("<i2").tobytes()

    async def scenario() -> tuple[Error, str]:
        async with running(SkillService(failing), f"unix://{tmp_path}/s.sock") as uri:
            async with AsyncClient.from_uri(uri) as client:
                await client.write_event(AudioStart(rate=rate, width=2, channels=1).event())
                await client.write_event(AudioChunk(rate=rate, width=2, channels=1,
                                                    audio=pcm).event())
                await client.write_event(AudioStop().event())
                error = Error.from_event(await asyncio.wait_for(client.read_event(), GUARD_S))
            return error, await transcribe(uri, pcm, rate, 2, 1)

    error, text = asyncio.run(scenario())
    assert error.code == "asr"
    assert skill.matcher.understand(text).intent == manifest_row(QUESTION)["intent"], text


def test_the_gate_lets_confident_words_and_red_flags_through(skill):
    unsure = 0.2
    assert skill.screen(Recognition("how do i stop a cramp", (), 0.9, True))
    assert skill.screen(Recognition("how do i stop a cramp", (), unsure, True)) == ""
    assert skill.screen(Recognition("i can't breathe", (), unsure, True)) == "i can't breathe"
    flagged = "how do i stop a cramp in my leg when i also have chest pain"  # nearest: no intent
    assert skill.screen(Recognition(flagged, (), unsure, True)) == flagged


# --- hostile or stuck clients -----------------------------------------------------------------


def test_an_oversized_event_is_refused_with_one_log_line_and_the_server_goes_on(
        skill, tmp_path, caplog):
    limits = Limits(max_payload_bytes=4096)

    async def scenario() -> tuple[Error, bytes, Info]:
        async with running(SkillService(skill, limits), f"unix://{tmp_path}/s.sock") as uri:
            reader, writer = await asyncio.open_unix_connection(f"{tmp_path}/s.sock")
            header = b'{"type": "audio-chunk", "payload_length": 4097}\n'
            writer.write(header)
            error = Error.from_event(await asyncio.wait_for(async_read_event(reader), GUARD_S))
            rest = await asyncio.wait_for(reader.read(), GUARD_S)
            writer.close()
            async with AsyncClient.from_uri(uri) as client:
                await client.write_event(Describe().event())
                info = Info.from_event(await asyncio.wait_for(client.read_event(), GUARD_S))
            return error, rest, info

    with caplog.at_level(logging.WARNING, logger="voiceskill.serve"):
        error, rest, info = asyncio.run(scenario())
    assert error.code == "refused" and "4097" in error.text
    assert rest == b""  # and the connection was closed
    assert info.handle
    assert len(caplog.records) == 1 and "exceeds 4096" in caplog.records[0].getMessage()


def test_a_transcript_longer_than_speech_is_refused(skill, tmp_path):
    async def scenario() -> Error:
        async with running(SkillService(skill), f"unix://{tmp_path}/s.sock") as uri, \
                AsyncClient.from_uri(uri) as client:
            await client.write_event(Transcript("cramp " * 1000).event())
            return Error.from_event(await asyncio.wait_for(client.read_event(), GUARD_S))

    assert "longer than" in asyncio.run(scenario()).text


def test_a_stuck_client_is_disconnected(skill, tmp_path):
    limits = Limits(idle_timeout_s=0.2)

    async def scenario() -> bytes:
        async with running(SkillService(skill, limits), f"unix://{tmp_path}/s.sock"):
            reader, writer = await asyncio.open_unix_connection(f"{tmp_path}/s.sock")
            writer.write(b'{"type": "transcr')  # half a header, then nothing
            closed = await asyncio.wait_for(reader.read(), GUARD_S)
            writer.close()
            return closed

    assert asyncio.run(scenario()) == b""


def test_connections_beyond_the_limit_are_refused(skill, tmp_path):
    limits = Limits(max_connections=1)

    async def scenario() -> Error:
        async with running(SkillService(skill, limits), f"unix://{tmp_path}/s.sock") as uri, \
                AsyncClient.from_uri(uri) as first:
            await first.write_event(Describe().event())
            await asyncio.wait_for(first.read_event(), GUARD_S)  # the first is being served
            async with AsyncClient.from_uri(uri) as second:
                return Error.from_event(await asyncio.wait_for(second.read_event(), GUARD_S))

    assert asyncio.run(scenario()).code == "busy"


# --- the command ------------------------------------------------------------------------------


def start_command(*args: str) -> tuple[subprocess.Popen, str]:
    """`voiceskill serve ...` as a subprocess, once it says it is serving; its stderr so far."""
    process = subprocess.Popen(
        [sys.executable, "-m", "voiceskill", "serve", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, bufsize=0, cwd=ROOT,
    )  # unbuffered: readline() takes no more than a line, so select() sees the rest
    said = ""
    while "serving on" not in said:
        ready, _, _ = select.select([process.stderr], [], [], GUARD_S)
        line = process.stderr.readline().decode() if ready else ""
        if not line:
            process.kill()
            pytest.fail(f"the server did not start: {said}")
        said += line
    return process, said


def stop_command(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=GUARD_S)
    return process.returncode, rest.decode()


def test_the_command_serves_a_unix_socket_and_ends_cleanly_on_sigterm(tmp_path):
    path = tmp_path / "voiceskill.sock"
    process, _ = start_command("--uri", f"unix://{path}")
    try:
        handled = asyncio.run(ask(f"unix://{path}", "how do I prevent cramps", "one"))
    finally:
        status, stderr = stop_command(process)
    assert "drinking enough water" in handled.text
    assert status == 0, stderr
    assert "Traceback" not in stderr
    assert not path.exists()


def test_zeroconf_announces_or_says_why_not_and_the_server_still_serves():
    """No network here: registration goes to the local interfaces only (or fails with a
    warning); that the service can be browsed from another machine is not tested."""
    uri = free_tcp_uri()
    process, said = start_command("--uri", uri, "--zeroconf", "voiceskill-test")
    try:
        handled = asyncio.run(ask(uri, "how do I prevent cramps", "one"))
    finally:
        status, stderr = stop_command(process)
    assert "announced as voiceskill-test" in said or "cannot announce" in said
    assert "drinking enough water" in handled.text
    assert status == 0, stderr


def test_stdio_speaks_the_protocol_on_stdout_and_logs_only_on_stderr():
    result = stdio(input=b'{"type": "describe"}\n')
    assert result.returncode == 0, result.stderr
    header, _, data = result.stdout.partition(b"\n")
    assert json.loads(header)["type"] == "info"
    assert json.loads(data)["handle"]
    assert b"Traceback" not in result.stderr


def test_zeroconf_needs_tcp(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "voiceskill", "serve", "--uri", f"unix://{tmp_path}/s.sock",
         "--zeroconf"], capture_output=True, text=True, timeout=GUARD_S,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "voiceskill: --zeroconf needs a tcp:// URI"
    assert not (tmp_path / "s.sock").exists()


# --- config file and version ------------------------------------------------------------------


def voiceskill(*args: str, config: str | None = None, home: Path) -> subprocess.CompletedProcess:
    if config is not None:
        (home / "voiceskill").mkdir(exist_ok=True)
        (home / "voiceskill" / "config.toml").write_text(config)
    env = {**os.environ, "XDG_CONFIG_HOME": str(home)}
    env.pop("VOSK_MODEL_PATH", None)
    return subprocess.run([sys.executable, "-m", "voiceskill", *args], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)


def test_the_config_file_sets_defaults_that_flags_override(tmp_path):
    config = f'engine = "vosk"\nvosk_model = "{tmp_path}/no-such-model"\n'
    wav = str(ROOT / QUESTION)
    from_config = voiceskill("replay", "--no-speak", wav, config=config, home=tmp_path)
    assert from_config.returncode == 2
    assert "no Vosk model" in from_config.stderr
    overridden = voiceskill("replay", "--no-speak", "--engine", "pocketsphinx", wav,
                            home=tmp_path)
    assert overridden.returncode == 0, overridden.stderr


@pytest.mark.parametrize("config", ["rate = 'fast'\n", "colour = 'blue'\n", "rate = \n"])
def test_a_bad_config_file_is_one_line_and_status_2(tmp_path, config):
    result = voiceskill("ask", "--no-speak", "hello", config=config, home=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "config.toml" in result.stderr and "Traceback" not in result.stderr


def test_version_comes_from_the_package_metadata(tmp_path):
    from importlib.metadata import version

    result = voiceskill("--version", home=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"voiceskill {version('voiceskill')}"


# --- round 2 (notes/hostile-round2.md) --------------------------------------------------------


async def wait_until(condition, what: str) -> None:
    """Poll a condition of the server's state (never a fixed sleep); fail after GUARD_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD_S
    while not condition():
        assert loop.time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


async def flood_without_reading(path: str, stop: asyncio.Event) -> None:
    """A client that sends describe after describe and never reads a reply."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(path)
    sock.setblocking(False)
    _, writer = await asyncio.open_unix_connection(sock=sock)
    try:
        while not stop.is_set():
            writer.write(b'{"type": "describe"}\n' * 100)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()


async def describe(uri: str) -> Info:
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), GUARD_S)
    assert Info.is_type(event.type), event
    return Info.from_event(event)


def test_clients_that_never_read_cannot_lock_others_out(skill, tmp_path):
    """D2: 16 clients flooding describes without reading held every slot for ever (the
    handlers sat in drain(), where no timeout applied)."""
    stuck_s = 0.5  # a reply blocked this long with a client that never reads stays blocked
    limits = Limits(make_room_after_s=(stuck_s, 5.0), max_events=10**9)
    service = SkillService(skill, limits)
    path = f"{tmp_path}/s.sock"

    def stuck(handler) -> bool:
        # Between two replies a handler briefly reads the next event: only one blocked in a
        # write for stuck_s is certain to be blocked still when the fresh client comes.
        return (bool(handler.waiting) and handler.waiting[0] == "write"
                and time.monotonic() - handler.waiting[1] >= stuck_s)

    async def scenario() -> Info:
        async with running(service, f"unix://{path}") as uri:
            floods = [asyncio.create_task(flood_without_reading(path, asyncio.Event()))
                      for _ in range(limits.max_connections)]
            await wait_until(lambda: service.open_connections == limits.max_connections
                             and all(stuck(h) for h in service.connections),
                             "every slot held by a client that does not read")
            info = await describe(uri)
            # The floods wait in drain() on handlers that no longer read them, until the
            # write timeout (30 s): they are ended here instead.
            for flood in floods:
                flood.cancel()
            await asyncio.gather(*floods, return_exceptions=True)
            return info

    assert asyncio.run(scenario()).handle


def test_a_client_that_takes_no_reply_is_disconnected(skill, tmp_path):
    """D2: the write timeout frees the slot even when nobody else needs it."""
    service = SkillService(skill, Limits(write_timeout_s=0.2, max_events=10**9))
    path = f"{tmp_path}/s.sock"

    async def scenario() -> None:
        async with running(service, f"unix://{path}"):
            stop = asyncio.Event()
            flood = asyncio.create_task(flood_without_reading(path, stop))
            await wait_until(lambda: service.open_connections == 1, "connected")
            await wait_until(lambda: service.open_connections == 0, "disconnected")
            stop.set()
            await flood

    asyncio.run(scenario())


def test_a_client_flooding_describes_is_cut_off(skill, tmp_path):
    """D2: a flood of describes fills the kernel's buffers with replies for many seconds
    before the handler looks stalled; the 100 clients of the review held every slot that long."""
    service = SkillService(skill, Limits(max_events=50))
    path = f"{tmp_path}/s.sock"

    async def scenario() -> None:
        async with running(service, f"unix://{path}"):
            # the flood ends when the server closes the connection (it never sets stop)
            await asyncio.wait_for(flood_without_reading(path, asyncio.Event()), GUARD_S)
            assert service.open_connections == 0

    asyncio.run(scenario())


def test_a_connection_has_a_lifetime_even_when_it_keeps_talking(skill, tmp_path):
    """D2 (A10): a describe now and then kept a connection for ever."""
    service = SkillService(skill, Limits(max_connection_s=0.5))

    async def scenario() -> int:
        async with running(service, f"unix://{tmp_path}/s.sock"):
            reader, writer = await asyncio.open_unix_connection(f"{tmp_path}/s.sock")
            answered = 0
            try:
                while True:
                    writer.write(b'{"type": "describe"}\n')
                    await writer.drain()
                    if await asyncio.wait_for(async_read_event(reader), GUARD_S) is None:
                        break
                    answered += 1
            except ConnectionError:
                pass
            writer.transport.abort()
            return answered

    assert asyncio.run(scenario()) >= 1


def test_tiny_chunks_past_the_cap_cost_no_memory():
    """D3: an empty array was appended for every chunk past 30 s (600 000 one-sample chunks:
    +140 MB)."""
    import tracemalloc

    from voiceskill.serve import AudioIntake

    intake = AudioIntake()
    intake.add(AudioChunk(rate=16000, width=2, channels=1, audio=bytes(2 * 16000 * 31)).event())
    one_sample = AudioChunk(rate=16000, width=2, channels=1, audio=b"\x01\x00").event()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(100_000):
            intake.add(one_sample)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, grown
    assert sum(len(chunk) for chunk in intake.clip.chunks()) == 30 * 16000


def test_too_many_chunks_in_one_utterance_are_refused():
    from voiceskill.serve import AudioIntake, ProtocolViolation

    intake = AudioIntake(max_chunks=10)
    one_sample = AudioChunk(rate=16000, width=2, channels=1, audio=b"\x01\x00").event()
    for _ in range(10):
        intake.add(one_sample)
    with pytest.raises(ProtocolViolation, match="too many audio chunks"):
        intake.add(one_sample)


async def send_raw(path: str, data: bytes) -> tuple[object, bytes]:
    """Send raw bytes; the first event the server answers (or None) and whatever follows."""
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(data)
    await writer.drain()
    event = await asyncio.wait_for(async_read_event(reader), GUARD_S)
    rest = await asyncio.wait_for(reader.read(), GUARD_S)
    writer.close()
    return event, rest


HOSTILE_EVENTS = {
    "D22 header nested 5000 deep": b'{"type": "describe", "x": ' + b"[" * 5000 + b"]" * 5000
    + b"}\n",
    "D22 data nested 20000 deep": b'{"type": "transcript", "data_length": 40000}\n'
    + b"[" * 20000 + b"]" * 20000,
    "D23 inline data a list": b'{"type": "transcript", "data": [1, 2]}\n',
    "D23 inline data a string": b'{"type": "transcript", "data": "text"}\n',
    "D32 NaN in the context": b'{"type": "transcript", "data": {"text": "hello", '
    b'"context": {"x": NaN, "y": Infinity}}}\n',
    "data a list of pairs": b'{"type": "transcript", "data_length": 24}\n'
    b'[["text", "what is it"]]',
    "D33 rate as text": b'{"type": "audio-chunk", "data": {"rate": "16000", "width": 2, '
    b'"channels": 1}, "payload_length": 2}\n\x00\x00',
}


@pytest.mark.parametrize("name", HOSTILE_EVENTS)
def test_a_malformed_event_is_refused_in_one_line_without_a_traceback(skill, tmp_path, caplog,
                                                                      name):
    """D22-D23, D32: RecursionError and AttributeError ended the task with 'Task exception was
    never retrieved'; NaN came back in the reply, which strict JSON peers cannot read."""
    path = f"{tmp_path}/s.sock"

    async def scenario():
        async with running(SkillService(skill), f"unix://{path}") as uri:
            answer = await send_raw(path, HOSTILE_EVENTS[name])
            return answer, await describe(uri)

    with caplog.at_level(logging.DEBUG):
        (event, rest), info = asyncio.run(scenario())
    assert event is not None and Error.is_type(event.type), event
    assert Error.from_event(event).code == "refused"
    assert rest == b"" and info.handle
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith("refused an event: ") and len(line) < 200
    if name == "D33 rate as text":
        assert "'<='" not in line and "must be whole numbers" in line


def test_a_peer_cannot_write_lines_into_the_log(skill, tmp_path, caplog):
    """D5: the event type went into the log verbatim: 'x\\nvoiceskill: stopped' forged a line."""
    path = f"{tmp_path}/s.sock"
    header = json.dumps({"type": "x\nvoiceskill: stopped" + "y" * 60_000,
                         "data_length": 10**9}).encode() + b"\n"

    async def scenario():
        async with running(SkillService(skill), f"unix://{path}"):
            return await send_raw(path, header)

    with caplog.at_level(logging.DEBUG):
        event, _ = asyncio.run(scenario())
    assert Error.from_event(event).code == "refused"
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "\n" not in line and len(line) < 200
    assert line.startswith("refused an event: x\\nvoiceskill: stopped")


def test_three_channel_chunks_of_any_length_are_taken(skill, tmp_path):
    """D24: 3 channels and an odd number of frames raised audioop.error (a traceback)."""
    path = f"{tmp_path}/s.sock"
    chunk = AudioChunk(rate=16000, width=2, channels=3, audio=bytes(6)).event()

    async def scenario() -> str:
        async with running(SkillService(skill), f"unix://{path}") as uri, \
                AsyncClient.from_uri(uri) as client:
            await client.write_event(chunk)
            await client.write_event(AudioStop().event())
            event = await asyncio.wait_for(client.read_event(), GUARD_S)
        assert Transcript.is_type(event.type), event
        return Transcript.from_event(event).text

    assert asyncio.run(scenario()) == ""


def test_a_regular_file_at_the_socket_path_is_not_deleted(skill, tmp_path):
    """D9: wyoming unlinks whatever is at the path before binding."""
    precious = tmp_path / "notes.txt"
    precious.write_text("precious")

    async def scenario() -> None:
        await start_server(SkillService(skill), f"unix://{precious}")

    with pytest.raises(UserError, match="exists and is not a socket"):
        asyncio.run(scenario())
    assert precious.read_text() == "precious"


@pytest.mark.parametrize("uri", ["unix://somedir/x.sock", "unix://"])
def test_a_unix_uri_without_a_full_path_is_refused(skill, uri):
    """D9: unix://dir/x.sock bound /x.sock (the 'dir' is a host name) and logged 'dir/x.sock'."""
    with pytest.raises(UserError, match="needs its full path"):
        asyncio.run(start_server(SkillService(skill), uri))


def test_a_second_server_does_not_steal_a_live_socket(skill, tmp_path):
    """D10: the second server unlinked the first's socket and bound its own, silently."""
    path = tmp_path / "s.sock"

    async def scenario() -> Info:
        async with running(SkillService(skill), f"unix://{path}") as uri:
            with pytest.raises(UserError, match="another server is listening there"):
                await start_server(SkillService(skill), uri)
            return await describe(uri)  # the first still serves

    assert asyncio.run(scenario()).handle


def test_a_socket_left_by_a_server_that_is_gone_is_replaced(skill, tmp_path):
    path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(path))  # never listening: what a killed server leaves

    async def scenario() -> Info:
        async with running(SkillService(skill), f"unix://{path}") as uri:
            return await describe(uri)

    assert asyncio.run(scenario()).handle


def test_binding_every_interface_is_said_in_a_warning():
    """D7: 0.0.0.0 started an unauthenticated health service on every interface silently."""
    port = free_tcp_uri().rsplit(":", 1)[1]
    process, said = start_command("--uri", f"tcp://0.0.0.0:{port}", "--content", str(MINIMAL))
    status, stderr = stop_command(process)
    assert status == 0, stderr
    assert "voiceskill: listening on 0.0.0.0: anyone who can reach this machine can use it" in said


def stdio(*, stdin=None, input: bytes | None = None, stdout=subprocess.PIPE,
          preexec_fn=None) -> subprocess.CompletedProcess:
    """`voiceskill serve --uri stdio://` on the smallest content: these tests are about the
    transport (what the skill answers is asked of the other servers here)."""
    return subprocess.run(
        [sys.executable, "-m", "voiceskill", "serve", "--uri", "stdio://", "--content",
         str(MINIMAL)], stdin=stdin,
        input=input, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT, preexec_fn=preexec_fn,
        timeout=300)  # a hang guard that also covers training the classifier on a cold cache


def test_stdio_with_stdin_at_dev_null_ends_at_once():
    """D19: a PermissionError traceback from asyncio, then a hang for ever."""
    with open(os.devnull, "rb") as null:
        result = stdio(stdin=null)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert b"Traceback" not in result.stderr


def test_stdio_reads_and_writes_regular_files(tmp_path):
    """D25: asyncio's pipe transports refused regular files with a traceback."""
    requests = tmp_path / "in"
    requests.write_bytes(b'{"type": "describe"}\n')
    replies = tmp_path / "out"
    with requests.open("rb") as stdin, replies.open("wb") as stdout:
        result = stdio(stdin=stdin, stdout=stdout)
    assert result.returncode == 0, result.stderr
    assert json.loads(replies.read_bytes().split(b"\n")[0])["type"] == "info"
    assert b"Traceback" not in result.stderr


def test_stdio_with_stdin_closed_is_one_line():
    """D25: AttributeError traceback."""
    result = stdio(preexec_fn=lambda: os.close(0))
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1] == (
        "voiceskill: stdio:// needs standard input and output; one of them is closed")


@pytest.mark.parametrize(("request_bytes", "message"), [
    (b"garbage\n", "event header is not JSON"),
    (b'{"type": "transcript", "data": {"text": 5}}\n', "transcript event has no text"),
    (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, '
     b'"payload_length": 3}\n\x00\x00\x00',
     "unusable audio chunk (payload is not a whole number of frames)"),
])
def test_stdio_refuses_a_bad_event_in_one_line_and_status_1(request_bytes, message):
    """D25: a ProtocolViolation traceback, status 1; D29: garbage ended silently with 0."""
    result = stdio(input=request_bytes)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    assert f"voiceskill: refused an event: {message}" in stderr
    assert json.loads(result.stdout.split(b"\n")[0])["type"] == "error"


def test_a_stderr_nobody_reads_does_not_freeze_the_server(tmp_path):
    """D20: with stderr a full pipe, logging blocked the event loop; a peer fills it with
    refused events (here 2000 of them: about 180 KB of log lines)."""
    path = tmp_path / "s.sock"
    # stderr: a pipe read no further; the smallest content, as no question is asked
    process, _ = start_command("--uri", f"unix://{path}", "--content", str(MINIMAL))
    try:
        async def scenario() -> Info:
            for _ in range(2000):
                reader, writer = await asyncio.open_unix_connection(str(path))
                writer.write(b"garbage\n")
                await writer.drain()
                await asyncio.wait_for(reader.read(), GUARD_S)
                writer.close()
            return await describe(f"unix://{path}")

        assert asyncio.run(scenario()).handle
    finally:
        process.send_signal(signal.SIGTERM)
        process.stderr.close()
        process.wait(timeout=GUARD_S)
