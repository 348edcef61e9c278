"""nanoVLM-Lite: how few inference FLOPs can nanoVLM spend per question and still answer well?"""
__version__ = "0.1.0"
__all__ = ["Engine", "load", "PointSettings", "__version__"]


def __getattr__(name):
    """Engine, load and PointSettings on first use: importing a light module of the package
    (the merge and report rules' code) then costs no torch and transformers (~4 CPU-s a job)."""
    if name in ("Engine", "load"):
        from . import engine
        return getattr(engine, name)
    if name == "PointSettings":
        from .settings import PointSettings
        return PointSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
