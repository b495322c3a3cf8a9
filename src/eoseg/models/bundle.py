"""A trained model together with everything needed to use it (what a checkpoint holds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from eoseg.config.schema import ExperimentConfig
from eoseg.data.stats import DatasetStats
from eoseg.geo.raster import RasterInfo


@dataclass
class ModelBundle:
    """A model in eval mode plus its resolved config and the prepared band statistics.

    ``stats`` is the content of the prepared dataset's ``stats.json`` (input expressions, band names per
    image, nodata per image, per-channel mean/std/min/max/p2/p98).
    """

    model: nn.Module
    config: ExperimentConfig
    stats: dict[str, Any]
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_stats(self) -> DatasetStats:
        """The typed band statistics (old checkpoints without per-scene nodata load too)."""
        return DatasetStats.from_dict(self.stats)

    def nodata_of(self, image: str, info: RasterInfo) -> float:
        """The nodata of ``image`` in a scene file: the dataset's rule (:meth:`DatasetStats.nodata_rule`);
        checkpoints whose stats predate ``nodata_override`` use the checkpoint's ``data.nodata``."""
        return self.dataset_stats.nodata_rule(image, info, fallback=self.config.data.nodata)

    @property
    def inputs(self) -> list[str]:
        """Model input channels as band expressions, in order."""
        return list(self.stats["inputs"])

    @property
    def bands(self) -> dict[str, list[str]]:
        """Band names per image name, in file order."""
        return {k: list(v) for k, v in self.stats["bands"].items()}

    @property
    def image_names(self) -> list[str]:
        """Names of the images a sample is made of (e.g. ['image'] or ['pre', 'post'])."""
        return list(self.stats["bands"])

    @property
    def classes(self) -> list[str]:
        return list(self.config.data.classes)

    @property
    def chip_size(self) -> int:
        return self.config.data.chips.size
