"""How far any way of choosing between the two recognisers could go: per condition, the
questions given the right intent from pocketsphinx's words (behind the `auto` front-end), from
Whisper's (raw audio, its confidence rule), by the cascade as the skill runs it
(`Skill.recognised`), and by a perfect chooser (either recogniser's words were right).

Whisper is decoded on every question here, asked or not, so the last column is a ceiling for
any rule that picks one recogniser's words per turn; the issue's targets above it cannot be
reached by a rule alone.

Run: python bench/second_opinion_ceiling.py [--offset 34] [--files 50]
         [--conditions babble_10,babble_5,reverb_living+babble_10,clean]
The default sample is the tuning one (files 34-83), apart from the held-out first 34.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace

import soundfile as sf

from speech_accuracy import degrade, enhance, fixtures, recognise, stable_int
from voiceskill.asr import create_recognizer
from voiceskill.asr.frontend import create_enhancer
from voiceskill.audio import SAMPLE_RATE
from voiceskill.content import load_content
from voiceskill.pipeline import Skill

ROOT = Path(__file__).resolve().parents[1]
LEAD_S = 2.0  # the room heard before each question, as in speech_accuracy.py


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--offset", type=int, default=34)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--conditions", default="babble_10,babble_5,reverb_living+babble_10,clean")
    args = parser.parse_args()

    content = load_content()
    skill = Skill(content)
    cascade = create_recognizer("cascade", content.domain_sentences(),
                                pronunciations=content.lexicon.pronunciations,
                                concepts=content.lexicon.concepts)
    whisper = getattr(cascade, "second", None)
    if whisper is None:
        raise SystemExit("Whisper is not available here (see the warning above)")
    enhancer = create_enhancer("auto")
    rows = [r for r in fixtures(args.files, args.offset) if r["intent"] != "fallback"]
    lead = round(LEAD_S * SAMPLE_RATE)
    print(f"{len(rows)} in-domain and control questions per condition from file {args.offset}")
    print(f"{'condition':26} pocketsphinx Whisper cascade either")
    for condition in args.conditions.split(","):
        right = {"pocketsphinx": 0, "Whisper": 0, "cascade": 0, "either": 0}
        for row in rows:
            clean, _ = sf.read(ROOT / row["file"], dtype="int16")
            seed = stable_int(row["file"], condition) % 2**32  # speech_accuracy.py's audio
            stream = degrade(clean, condition, seed, LEAD_S)
            enhanced, _ = enhance(enhancer, stream)
            first, _, _ = recognise(cascade.first, enhanced[lead:])
            raw = stream[lead:]
            alone = skill.matcher.understand(first.text, first.confidence).intent
            heard = whisper.transcribe(raw)
            second = skill.matcher.understand(heard.text).intent if heard.text else "fallback"
            skill.recognizer = SimpleNamespace(second_opinion=lambda heard=heard: heard)
            chosen = skill.recognised(first)[1].intent
            expected = row["intent"]
            right["pocketsphinx"] += alone == expected
            right["Whisper"] += second == expected
            right["cascade"] += chosen == expected
            right["either"] += expected in (alone, second)
        print(f"{condition:26} " + " ".join(f"{count / len(rows):>{len(name)}.0%}"
                                            for name, count in right.items()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
