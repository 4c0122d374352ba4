"""Round trips through `voiceskill serve` with the wyoming package's own client.

Starts the server in-process on a unix socket (or uses --uri of a running one), then prints
median / p95 / max of:
- handle: `transcript` -> `handled`, a new connection each time as Home Assistant does, over a
  three-turn triage conversation repeated with fresh conversation ids;
- asr: `audio-stop` -> `transcript` for a fixture question streamed in 100 ms chunks at
  16 kHz mono and at 44.1 kHz stereo (the time after the last chunk is what a user waits).

    python bench/server_latency.py [--rounds 30] [--uri unix:///run/user/1000/voiceskill.sock]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.handle import Handled

from voiceskill.asr import create_recognizer
from voiceskill.content import load_content
from voiceskill.pipeline import Skill
from voiceskill.serve import SkillService, start_server

ROOT = Path(__file__).parents[1]
QUESTION = ROOT / "audio_fixtures/clean/spasm_relief__1__flite-slt.wav"
TRIAGE = ("should I see a doctor about my twitching", "no", "yes it's lasted two weeks")


def summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return (f"{name:28} n={len(ms):3}  median {statistics.median(ms):7.1f} ms  "
            f"p95 {p95:7.1f} ms  max {ms[-1]:7.1f} ms")


async def handle_round_trips(uri: str, rounds: int) -> list[float]:
    times = []
    for round_number in range(rounds):
        for text in TRIAGE:
            began = time.perf_counter()
            async with AsyncClient.from_uri(uri) as client:
                await client.write_event(
                    Transcript(text, context={"conversation_id": f"bench-{round_number}"}).event()
                )
                event = await client.read_event()
            times.append(time.perf_counter() - began)
            assert event is not None and Handled.is_type(event.type)
    return times


def pcm_at(rate: int, channels: int) -> bytes:
    audio, source_rate = sf.read(QUESTION, dtype="float32")
    if rate != source_rate:
        audio = soxr.resample(audio, source_rate, rate)
    frames = np.repeat(audio[:, None], channels, axis=1)
    return (np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes()


async def asr_latencies(uri: str, rounds: int, rate: int, channels: int) -> list[float]:
    pcm, step = pcm_at(rate, channels), rate // 10 * 2 * channels
    times = []
    for _ in range(rounds):
        async with AsyncClient.from_uri(uri) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
            for start in range(0, len(pcm), step):
                chunk = AudioChunk(rate=rate, width=2, channels=channels,
                                   audio=pcm[start : start + step])
                await client.write_event(chunk.event())
            began = time.perf_counter()
            await client.write_event(AudioStop().event())
            event = await client.read_event()
            times.append(time.perf_counter() - began)
        assert event is not None and Transcript.is_type(event.type)
    return times


async def run(uri: str | None, rounds: int) -> None:
    server = None
    if uri is None:
        content = load_content()
        began = time.perf_counter()
        recognizer = create_recognizer("pocketsphinx", content.domain_sentences())
        print(f"recogniser start-up: {(time.perf_counter() - began) * 1000:.0f} ms")
        folder = tempfile.mkdtemp(prefix="voiceskill-bench-")
        uri = f"unix://{folder}/serve.sock"
        server = await start_server(SkillService(Skill(content, recognizer=recognizer)), uri)
    try:
        print(summary("handle (per turn)", await handle_round_trips(uri, rounds)))
        print(summary("asr 16 kHz mono", await asr_latencies(uri, rounds, 16_000, 1)))
        print(summary("asr 44.1 kHz stereo", await asr_latencies(uri, rounds, 44_100, 2)))
    finally:
        if server is not None:
            await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--uri", help="a running server (default: start one in-process)")
    args = parser.parse_args()
    asyncio.run(run(args.uri, args.rounds))


if __name__ == "__main__":
    main()
