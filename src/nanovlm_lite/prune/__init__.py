"""Structured width pruning: activation-based channel importance (importance.py) and the
pruned checkpoint in upstream's format (apply.py); the widths a point's prune_* settings
make live in model/widths.py."""
