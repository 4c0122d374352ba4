"""`python -m voiceskill` and the `voiceskill` console script: the CLI in voiceskill.cli."""

import sys


def run() -> int:
    """The CLI; Ctrl-C while its libraries load ends like Ctrl-C later: one line, status 130."""
    try:
        from voiceskill.cli import main
    except KeyboardInterrupt:
        print("voiceskill: interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    raise SystemExit(run())
