"""A budgeted search for the cheapest point over the bar (docs/search.md): the `search:`
section (space.py), the held-out search split (split.py), the racing rule (racing.py), the
workers (worker.py) and what they found (result.py)."""
