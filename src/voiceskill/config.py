"""Settings file: `config.toml` in the user's config folder (e.g. ~/.config/voiceskill/).

Every key is optional and is overridden by the matching command-line flag:

    engine = "pocketsphinx"        # auto | pocketsphinx | vosk
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

import platformdirs

from voiceskill.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

KEYS: dict[str, type] = {
    "engine": str, "vosk_model": str, "voice": str, "rate": int, "wake": str, "uri": str,
}
MAX_CONFIG_BYTES = 64_000


class ConfigError(UserError):
    """The config file cannot be used; str() says which file and what is wrong."""


def config_path() -> Path:
    return Path(platformdirs.user_config_dir("voiceskill")) / "config.toml"


def load_config(path: Path | None = None) -> dict[str, Any]:
    """The settings in `path` (default: config_path()), {} when there is no file."""
    path = path or config_path()
    try:
        raw = path.read_bytes()[: MAX_CONFIG_BYTES + 1]
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
    try:
        settings = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for key, value in settings.items():
        expected = KEYS.get(key)
        if expected is None:
            raise ConfigError(f"{path}: unknown setting {key!r} (known: {', '.join(KEYS)})")
        if type(value) is not expected:
            raise ConfigError(f"{path}: {key} must be a {expected.__name__}")
    if "vosk_model" in settings:
        settings["vosk_model"] = Path(settings["vosk_model"]).expanduser()
    return settings
