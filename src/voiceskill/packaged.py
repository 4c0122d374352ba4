"""Where the data that ships with the code is found: `intents/`, `docs/` (the safety policy and
the summaries of guidance the answers cite) and `licenses/`.

In a source checkout they sit at the top of the repo, where they are edited; a built wheel puts
them inside the package (pyproject's force-include), so an installed skill finds them there.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parents[1]
"""The repo this runs from (src/voiceskill/..); in an installed wheel it is not one."""
IN_CHECKOUT = (CHECKOUT / "pyproject.toml").is_file() and (CHECKOUT / "src" / "voiceskill").is_dir()


def data_folder(name: str) -> Path:
    """The shipped folder `name`: inside the installed package, else the checkout's own."""
    packaged = PACKAGE / name
    return packaged if packaged.is_dir() else CHECKOUT / name
