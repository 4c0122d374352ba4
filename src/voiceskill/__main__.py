"""`python -m voiceskill` runs the same CLI as the `voiceskill` console script."""

from voiceskill.cli import main

raise SystemExit(main())
