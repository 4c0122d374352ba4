"""Settings file: `config.toml` in the user's config folder (e.g. ~/.config/voiceskill/).

Every key is optional and is overridden by the matching command-line flag:

    engine = "pocketsphinx"        # auto | pocketsphinx | vosk | whisper | cascade
    vosk_model = "~/models/vosk-model-small-en-us-0.15"
    voice = "en-gb"
    rate = 150                     # words per minute
    wake = "hey skill"
    uri = "tcp://127.0.0.1:10600"  # where `voiceskill serve` listens

platformdirs finds the folder the platform expects (XDG_CONFIG_HOME on Linux); tomllib reads it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import platformdirs

from voiceskill.bounded import FileTooLargeError, NotRegularFileError, read_regular
from voiceskill.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

KEYS: dict[str, type] = {
    "engine": str, "vosk_model": str, "voice": str, "rate": int, "wake": str, "uri": str,
}
TYPE_NAMES = {str: "text in quotes", int: "a whole number"}
MAX_CONFIG_BYTES = 64_000
RATE_RANGE = (80, 450)
"""Words per minute espeak-ng can say: below it is a crawl, above it no sound at all."""


class ConfigError(UserError):
    """The config file cannot be used; str() says which file and what is wrong."""


def config_path() -> Path:
    return Path(platformdirs.user_config_dir("voiceskill")) / "config.toml"


ENGINES = ("auto", "pocketsphinx", "vosk", "whisper", "cascade")
"""The recognition engines (asr.create_recognizer); here, where every command can read them
without loading a recogniser."""
FRONTENDS = ("auto", "none", "rnnoise", "deepfilter")
DEFAULT_FRONTEND = "auto"
"""The speech front-ends (asr.frontend.create_enhancer), here for the same reason: a typed
question never loads the audio stack."""


def uri_problem(uri: str) -> str | None:
    """Why `serve` could not listen on `uri`, as far as its spelling shows, or None."""
    try:
        parsed = urlparse(uri)
        port = parsed.port
    except ValueError as exc:
        return str(exc)
    if parsed.scheme == "tcp":
        return None if parsed.hostname and port is not None else "needs tcp://HOST:PORT"
    if parsed.scheme == "unix":
        return None if parsed.path and not parsed.netloc else "needs unix:///full/path"
    if parsed.scheme == "stdio":
        return None
    return "must start with tcp://, unix:// or stdio://"


def rate_problem(rate: int) -> str | None:
    """Why `rate` (words per minute) cannot be used, or None."""
    low, high = RATE_RANGE
    if not low <= rate <= high:
        return f"rate {rate} is out of range: words per minute from {low} to {high}"
    return None


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The settings in `path` (default: config_path()), {} when there is no file."""
    path = path or config_path()
    raw = _read_bounded(path)
    if raw is None:
        return {}
    try:
        settings = tomllib.loads(raw.decode("utf-8-sig"))  # Notepad starts a file with a BOM
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for key, value in settings.items():
        expected = KEYS.get(key)
        if expected is None:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(KEYS)})")
        if type(value) is not expected:
            raise ConfigError(f"{path}: {key} must be {TYPE_NAMES[expected]}")
    if "rate" in settings and rate_problem(settings["rate"]):
        raise ConfigError(f"{path}: {rate_problem(settings['rate'])}")
    if settings.get("engine", "auto") not in ENGINES:
        raise ConfigError(f"{path}: engine {settings['engine']!r} is not one of "
                          f"{', '.join(ENGINES)}")
    if "uri" in settings and uri_problem(settings["uri"]):
        raise ConfigError(f"{path}: uri {settings['uri']!r}: {uri_problem(settings['uri'])}")
    if "vosk_model" in settings:
        settings["vosk_model"] = Path(settings["vosk_model"]).expanduser()
    return settings


def _read_bounded(path: Path) -> bytes | None:
    """At most MAX_CONFIG_BYTES of a regular file, None if there is none (bounded.py)."""
    try:
        return read_regular(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        return None
    except NotRegularFileError:
        raise ConfigError(f"{path}: not a regular file (a pipe or a device?)") from None
    except FileTooLargeError:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
