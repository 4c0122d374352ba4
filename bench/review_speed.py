"""Time `voiceskill review` on the shipped content and weigh the page (targets: ≤ 2 s, ≤ 1 MB).

Each run is a fresh `python -m voiceskill review` (interpreter start-up included, as a user
meets it); then one in-process run split by stage. Run: python bench/review_speed.py [RUNS]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def command_seconds(out: Path) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "voiceskill", "review", "-o", str(out)],
                   check=True, capture_output=True)
    return time.perf_counter() - began


def stages() -> dict[str, float]:
    from voiceskill import review
    from voiceskill.content import load_content
    from voiceskill.review.sources import source_dirs

    timings, began = {}, time.perf_counter()
    content = load_content(strict=False)
    timings["load content"], began = time.perf_counter() - began, time.perf_counter()
    review.render_graph(content, "svg")
    timings["draw graph (dot)"], began = time.perf_counter() - began, time.perf_counter()
    sign_off = review.SignOff(content.fingerprint, "now", "bench")
    review.review_html(content, review.read_sources(content, source_dirs()), None, sign_off)
    timings["whole page"] = time.perf_counter() - began
    return timings


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "review.html"
        seconds = [command_seconds(out) for _ in range(runs)]
        size = out.stat().st_size
    print(f"voiceskill review: median {statistics.median(seconds):.2f} s, "
          f"max {max(seconds):.2f} s over {runs} runs (target ≤ 2 s)")
    print(f"page size: {size / 1000:.0f} kB (target ≤ 1000 kB)")
    for stage, took in stages().items():
        print(f"  {stage}: {took * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
