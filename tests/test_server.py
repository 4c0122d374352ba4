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
from wyoming.event import async_read_event
from wyoming.handle import Handled
from wyoming.info import Describe, Info

from test_faults import FailsOnce
from voiceskill.asr import Transcript as Recognition
from voiceskill.asr import create_recognizer
from voiceskill.content import load_content
from voiceskill.pipeline import Skill
from voiceskill.server import ConversationStore, Limits, SkillService, start_server

ROOT = Path(__file__).parents[1]
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


async def ask(uri: str, text: str, conversation_id: str) -> Handled:
    async with AsyncClient.from_uri(uri) as client:
        await client.write_event(Transcript(text, context={"conversation_id": conversation_id})
                                 .event())
        event = await asyncio.wait_for(client.read_event(), GUARD_S)
    assert Handled.is_type(event.type), event
    return Handled.from_event(event)


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
    assert "kitchen" in service.conversations and "bedroom" in service.conversations


def test_goodbye_drops_the_conversation(skill, tmp_path):
    service = SkillService(skill)

    async def scenario() -> Handled:
        async with running(service, f"unix://{tmp_path}/s.sock") as uri:
            await ask(uri, "should I see a doctor about my twitching", "hall")
            await ask(uri, "goodbye", "hall")
            assert "hall" not in service.conversations
            return await ask(uri, "no", "hall")  # a fresh conversation: no pending question

    after = asyncio.run(scenario())
    assert after.text == skill.content.messages["no_context"]


# --- the conversation store (no network, a clock of our own) ----------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_conversation_expires_after_its_time_to_live(skill):
    clock = Clock()
    store = ConversationStore(skill.conversation, ttl_s=300, max_size=10, clock=clock)
    with store.session("a") as conversation:
        skill.text_turn(conversation, "should I see a doctor about my twitching")
    clock.now += 299
    with store.session("a") as conversation:
        assert conversation.awaiting_answer  # still the same triage
    clock.now += 300
    assert "a" not in store
    with store.session("a") as conversation:
        assert not conversation.awaiting_answer  # started afresh


def test_the_store_keeps_at_most_its_size_dropping_the_least_recently_used(skill):
    clock = Clock()
    store = ConversationStore(skill.conversation, ttl_s=300, max_size=2, clock=clock)
    for conversation_id in ("a", "b", "a", "c"):
        clock.now += 1
        with store.session(conversation_id):
            pass
    assert len(store) == 2
    assert "a" in store and "c" in store and "b" not in store


# --- speech to text ---------------------------------------------------------------------------

QUESTION = "audio_fixtures/clean/spasm_relief__1__flite-slt.wav"


@pytest.mark.parametrize(("rate", "channels"), [(44_100, 2), (16_000, 1)])
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

    with caplog.at_level(logging.WARNING, logger="voiceskill.server"):
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
    describe = b'{"type": "describe"}\n'
    result = subprocess.run(
        [sys.executable, "-m", "voiceskill", "serve", "--uri", "stdio://"], input=describe,
        capture_output=True, timeout=GUARD_S, cwd=ROOT,
    )
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
