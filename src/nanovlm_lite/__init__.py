"""nanoVLM-Lite: how few inference FLOPs can nanoVLM spend per question and still answer well?"""
from .engine import Engine, load
from .settings import PointSettings

__version__ = "0.1.0"
__all__ = ["Engine", "load", "PointSettings", "__version__"]
