"""FastV: after LM layer K, drop a ratio of image tokens by the attention the last
position pays them. Not built yet: only the inactive path exists."""
from __future__ import annotations

from dataclasses import dataclass

from ..settings import PointSettings


@dataclass
class FastV:
    layer: int | None
    ratio: float
    cache: object

    @classmethod
    def from_settings(cls, settings: PointSettings, cache) -> "FastV":
        return cls(settings.fastv_layer, settings.fastv_ratio, cache)

    @property
    def active(self) -> bool:
        return self.layer is not None and self.ratio > 0

    def mask_for_layer(self, layer: int, mask):
        return mask

    def drops_after(self, layer: int) -> bool:
        if self.active:
            raise NotImplementedError("FastV is not built yet")
        return False
