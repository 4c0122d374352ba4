"""voiceskill: an offline voice skill about muscle twitches, spasms and when to seek care."""


def __getattr__(name: str) -> str:
    """`__version__`, looked up when first asked for: importing importlib.metadata would cost
    every `voiceskill ask` a twentieth of its time."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("voiceskill")  # pyproject.toml is the one place the version is set
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
