"""Where the package finds files that live beside it in the checkout."""

from pathlib import Path

#: Page templates and static assets (``views/`` at the top of the checkout).
VIEWS = Path(__file__).resolve().parents[1] / "views"
