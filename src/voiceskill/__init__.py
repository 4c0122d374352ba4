"""voiceskill: an offline voice skill about muscle twitches, spasms and when to seek care."""

__version__ = "0.1.0"
