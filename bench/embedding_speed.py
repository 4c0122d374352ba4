"""Time the numpy all-MiniLM-L6-v2 encoder (voiceskill.nlu.embedding) on one core.

Targets: load ≤ 0.35 s, one sentence ≤ 20 ms at p95. Prints the import and load times, the
latency of single sentences (200 varied ones, one at a time, as a live question arrives), the
throughput of one encode() call on 2,000 sentences (as when training a classifier), and the peak
RSS. The encoder limits BLAS to one thread itself. Run: python bench/embedding_speed.py

OPENBLAS_CORETYPE, where set, picks an older kernel; the BLAS line printed says which one ran.
"""

from __future__ import annotations

import random
import resource
import statistics
import sys
import time

SUBJECTS = ["my eyelid", "my left calf", "the muscle in my thigh", "my thumb", "my back",
            "my foot", "a muscle under my eye", "my arm", "my neck", "my stomach"]
COMPLAINTS = ["keeps twitching", "has been cramping at night", "spasms when I walk",
              "jumps on its own", "feels tight and sore", "won't stop flickering",
              "twitches after coffee", "locks up during exercise"]
CONTEXTS = ["for two days", "since last week", "for about a month", "every evening",
            "after I run", "when I'm stressed", "and it's getting worse", "but it doesn't hurt",
            "and I also feel weak", "and I can't sleep"]
QUESTIONS = ["is that normal?", "should I see a doctor?", "what causes that?",
             "could it be serious?", "what can I do about it?", "is it because of stress?",
             "do I need magnesium?", "when should I worry?"]


def sentences(count: int, seed: int) -> list[str]:
    """Varied user questions, from three words to a few clauses, the same on every run."""
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        parts = [f"{rng.choice(SUBJECTS)} {rng.choice(COMPLAINTS)}"]
        parts += rng.sample(CONTEXTS, rng.choice([0, 1, 1, 2, 3]))
        text = " ".join(parts)
        if rng.random() < 0.7:
            text += ", " + rng.choice(QUESTIONS)
        made.append(text[0].upper() + text[1:])
    return made


def main() -> int:
    began = time.perf_counter()
    from voiceskill.nlu.embedding import SentenceEncoder

    imported, cpu = time.perf_counter(), time.process_time()
    encoder = SentenceEncoder()
    loaded, cpu = time.perf_counter(), time.process_time() - cpu
    # CPU time beside wall time: the two cores are shared, so a slow load may only be waiting.
    print(f"import: {(imported - began) * 1000:.0f} ms (numpy included); "
          f"load: {(loaded - imported) * 1000:.0f} ms, {cpu * 1000:.0f} ms CPU "
          "(target ≤ 350 ms)")

    import threadpoolctl

    blas = [f"{info['internal_api']} {info.get('architecture', '?')}"
            for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    print(f"BLAS: {', '.join(blas)}; limited to 1 thread while encoding")

    singles = sentences(200, seed=1)
    first = time.perf_counter()
    encoder.encode(singles[:1])
    print(f"first sentence: {(time.perf_counter() - first) * 1000:.1f} ms")
    latencies = []
    for text in singles:
        start = time.perf_counter()
        encoder.encode([text])
        latencies.append((time.perf_counter() - start) * 1000)
    p50 = statistics.median(latencies)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(f"one sentence ({len(singles)}, one at a time): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"max {max(latencies):.1f} ms (target p95 ≤ 20 ms)")

    batch = sentences(2000, seed=2)
    start = time.perf_counter()
    encoder.encode(batch)
    took = time.perf_counter() - start
    print(f"batch of {len(batch)}: {took:.2f} s, {len(batch) / took:.0f} sentences/s")

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS: {peak_mb:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
