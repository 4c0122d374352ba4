"""What valid content looks like: its four files, the names the code relies on, and a JSON
schema per file (checked before anything is built from the YAML)."""

from __future__ import annotations

INTENTS_FILE = "intents.yaml"
DIALOGUE_FILE = "dialogue.yaml"
LEXICON_FILE = "lexicon.yaml"
RED_FLAGS_FILE = "red_flags.yaml"
EXAMPLES_FILE = "examples.yaml"
CONTENT_FILES = (INTENTS_FILE, DIALOGUE_FILE, LEXICON_FILE, RED_FLAGS_FILE)
OPTIONAL_FILES = (EXAMPLES_FILE,)
SIGN_REFERENCE_KINDS = ("present", "not_a_sign")
LASTING_STATUSES = ("gradual", "occasional")
"""ConText statuses of a sign that is happening but crept up or comes and goes."""
OUTCOMES = ("self_care", "see_doctor", "urgent", "emergency")
ACTIONS = ("repeat", "slower", "stop", "help", "more", "back", "start_over", "goodbye")
ANSWERS = ("yes", "no", "unknown")
FALLBACK = "fallback"
# The intent names other tools rely on (DESIGN.md); `check` refuses content without them.
CONTRACT_INTENTS = (
    "twitch_vs_spasm", "twitch_causes", "spasm_causes", "twitch_serious", "spasm_relief",
    "spasm_prevention", "when_to_see_doctor", "doctor_visit", "back_spasm", "medication",
    "nutrition", "emergency", "repeat", "slower", "stop", "help", "yes", "no", "back",
    "start_over", "goodbye", FALLBACK,
)
MESSAGE_KEYS = (
    "fallback", "help", "nothing_to_repeat", "nothing_more", "no_context",
    "slower", "stopped", "goodbye", "at_start", "reask", "unsure_reask", "unsure_move_on",
    "asked_about_red_flag", "asked_about_urgent_sign", "not_confirmed",
)
_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 64}


def _record(required: list[str], properties: dict) -> dict:
    """A mapping with exactly these keys (the required ones and optional others)."""
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": properties}


def _named(values: dict, min_items: int = 0) -> dict:
    """A mapping from snake_case names to `values`."""
    return {"type": "object", "minProperties": min_items, "propertyNames": _NAME,
            "additionalProperties": values}


_WORDS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 80}}

INTENTS_SCHEMA = _record(["language", "intents"], {
    "language": {"type": "string"},
    "expansion_rules": _named(_TEXT),
    "intents": _named(
        _record(["sentences"], {
            "sentences": {"type": "array", "minItems": 1, "items": _TEXT},
            "action": {"enum": list(ACTIONS)},
            "answer": {"enum": list(ANSWERS)},
            "needs": {"type": "array", "minItems": 1, "items": _NAME},
        }),
        min_items=1,
    ),
})

LEXICON_SCHEMA = _record(["concepts"], {
    "concepts": _named(_record(["terms"], {
        "terms": {**_WORDS, "minItems": 1},
        "domain": {"type": "boolean"},
        "swap": {"type": "boolean"},
        "veto": {"type": "boolean"},
        "task": {"type": "boolean"},
        "courtesy": {"type": "boolean"},
    }), min_items=1),
    "time_units": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
    "quantities": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
    "since": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
    "under": _WORDS,
    "frequency": _WORDS,
    "own_body": _record(["words", "concepts"], {"words": _WORDS, "concepts": _WORDS}),
    "not_muscle": _record(["concepts", "unless"], {"concepts": _WORDS, "unless": _WORDS}),
    "pronunciations": {"type": "object", "propertyNames": {"pattern": "^[a-z][a-z']*$"},
                       "additionalProperties": {"type": "string",
                                                "pattern": "^[A-Z]+( [A-Z]+)*$"}},
})

_TRIGGERS = {"forward": _WORDS, "backward": _WORDS}
RED_FLAGS_SCHEMA = _record(["max_gap", "context", "flags"], {
    "max_gap": {"type": "integer", "minimum": 0, "maximum": 5},
    "context": _record(
        ["window", "terminators", "pseudo", "present", "negated", "historical", "hypothetical",
         "question_backward", "question_starts"],
        {
            "window": {"type": "integer", "minimum": 1, "maximum": 20},
            "terminators": _WORDS, "pseudo": _WORDS, "present": _WORDS, "decoys": _WORDS,
            "negated": _record([], _TRIGGERS), "historical": _record([], _TRIGGERS),
            "hypothetical": _record([], _TRIGGERS),
            **{status: _record([], _TRIGGERS) for status in LASTING_STATUSES},
            "question_backward": _WORDS, "question_starts": _WORDS, "light_words": _WORDS,
            "hedges": _WORDS, "naming": _WORDS, "topic_before": _WORDS, "topic_after": _WORDS,
            "things": _WORDS, "thing_links": _WORDS, "onset": _WORDS, "asides": _WORDS,
            "said_for": {"type": "object", "additionalProperties": _WORDS},
            "left_out": _WORDS,
        },
    ),
    "flags": _named(_record(["goto", "confirm", "phrases"], {
        "goto": _NAME,
        "max_gap": {"type": "integer", "minimum": 0, "maximum": 16},
        "confirm": _TEXT,
        "by_meaning": {"type": "boolean"},
        "becomes": _record([], {status: _NAME for status in LASTING_STATUSES}),
        "phrases": {"type": "array", "minItems": 1, "items": _TEXT},
        "together": {"type": "array", "minItems": 2, "maxItems": 3,
                     "items": {"type": "array", "minItems": 1, "items": _TEXT}},
        "examples": _record([], {kind: {"type": "array", "items": _TEXT}
                                 for kind in ("present", "negated", "question", "past")}),
    }), min_items=1),
})

EXAMPLES_SCHEMA = _record([], {
    "intents": _named({"type": "array", "minItems": 1, "items": _TEXT}),
    "red_flags": _named(_record([], {kind: {"type": "array", "items": _TEXT}
                                     for kind in SIGN_REFERENCE_KINDS})),
})

# A document is looked up inside the source folders only: a relative path whose parts are plain
# names (no "/" at the start, no "..", no hidden files), so content from someone else cannot make
# the review sheet embed /etc/passwd or /proc/self/environ.
DOCUMENT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$"
_DOCUMENT = {"type": "string", "maxLength": 200, "pattern": DOCUMENT_PATTERN}

_SOURCE_REF = _record(
    ["doc", "paragraph"], {"doc": _NAME, "paragraph": {"type": "integer", "minimum": 1}}
)

DIALOGUE_SCHEMA = _record(["sources", "start", "disclaimer", "messages", "routes", "nodes"], {
    "sources": _named(_record(["title", "document"], {"title": _TEXT, "document": _DOCUMENT}),
                      min_items=1),
    "start": _NAME,
    "disclaimer": _TEXT,
    "messages": _record(
        list(MESSAGE_KEYS), {key: {"type": "string", "maxLength": 2000} for key in MESSAGE_KEYS}
    ),
    "routes": _named(_NAME),
    "nodes": _named(_record(["say"], {
        "kind": {"enum": ["info", "advice", "question", "chat"]},
        "say": _TEXT,
        "more": _TEXT,
        "ask": _TEXT,
        "on": _named(_NAME),
        "outcome": {"enum": list(OUTCOMES)},
        "sources": {"type": "array", "minItems": 1, "items": _SOURCE_REF},
        "yes_from_days": {"type": "number", "minimum": 0},
        "yes_if": {"type": "array", "items": _NAME},
    }), min_items=1),
})
