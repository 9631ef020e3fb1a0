"""``python -m asyncjobs.cli``: the same as the ``asyncjobs`` console script."""

from __future__ import annotations

from .app import main

main()
