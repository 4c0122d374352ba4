"""voiceskill: an offline voice skill about muscle twitches, spasms and when to seek care."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voiceskill")  # pyproject.toml is the one place the version is set
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
