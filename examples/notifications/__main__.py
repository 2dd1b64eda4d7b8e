"""``python examples/notifications`` (or ``python -m examples.notifications``): run the recipe."""

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a directory: make ``examples`` importable from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.notifications.walkthrough import main

if __name__ == "__main__":
    raise SystemExit(main())
