"""Band math: model input channels as numexpr expressions over named bands (``vh``, ``(vh+vv)/2``).

Expressions may only use band names, numbers, arithmetic / comparison operators and numexpr functions;
anything else (attributes, indexing, unknown names) is a :class:`ConfigError` that lists the valid names.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence

import numexpr
import numpy as np

from eoseg.errors import ConfigError

NUMEXPR_FUNCTIONS = frozenset(
    "where sin cos tan arcsin arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh "
    "log log10 log1p exp expm1 sqrt abs conj real imag complex contains fmod ceil floor".split()
)
ALLOWED_NODES = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.BoolOp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Call,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.boolop,
)


def default_band_names(image: str, count: int) -> list[str]:
    """The image name for a single band, else ``image_1, image_2, ...``."""
    return [image] if count == 1 else [f"{image}_{i}" for i in range(1, count + 1)]


def resolve_band_names(configured: Mapping[str, list[str]], counts: Mapping[str, int]) -> dict[str, list[str]]:
    """Band names per image from ``data.bands`` (checked against the band counts) or the defaults."""
    unknown = sorted(set(configured) - set(counts))
    if unknown:
        raise ConfigError(f"data.bands names image(s) {unknown} that the scenes do not have (images: {list(counts)})")
    names: dict[str, list[str]] = {}
    for image, count in counts.items():
        bands = list(configured.get(image) or default_band_names(image, count))
        if len(bands) != count:
            raise ConfigError(
                f"data.bands.{image}: lists {len(bands)} band names but image {image!r} has {count} bands"
            )
        names[image] = bands
    flat = [b for bands in names.values() for b in bands]
    duplicates = sorted({b for b in flat if flat.count(b) > 1})
    if duplicates:
        raise ConfigError(f"data.bands: band name(s) {duplicates} are used twice; give every band a unique name")
    bad = [b for b in flat if not b.isidentifier()]
    if bad:
        raise ConfigError(f"data.bands: {bad} are not valid names; use letters, digits and _ (e.g. nir, b08)")
    return names


class BandMath:
    """Model input channels from named bands: ``BandMath(["vh", "vv", "(vh+vv)/2"], {"vh": ["vh"], ...})``."""

    def __init__(self, inputs: Sequence[str], bands: Mapping[str, Sequence[str]]) -> None:
        self.bands = {image: list(names) for image, names in bands.items()}
        self.index = {b: (image, i) for image, names in self.bands.items() for i, b in enumerate(names)}
        self.inputs = list(inputs) or [b for names in self.bands.values() for b in names]
        self._compiled = [self._check(expr) for expr in self.inputs]

    @property
    def channels(self) -> int:
        """Number of model input channels."""
        return len(self.inputs)

    def plain_band(self, channel: int) -> tuple[str, int] | None:
        """``(image, band index)`` when input ``channel`` is a band as is, else None."""
        return self.index.get(self.inputs[channel].strip())

    def _check(self, expr: str) -> tuple[str, list[str]]:
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError as exc:
            raise ConfigError(f"data.inputs: {expr!r} is not a valid expression ({exc.msg})") from exc
        used: list[str] = []
        for node in ast.walk(tree):
            if not isinstance(node, ALLOWED_NODES):
                raise ConfigError(
                    f"data.inputs: {expr!r} uses {type(node).__name__}, which band math does not allow; "
                    "use band names, numbers, operators and numexpr functions"
                )
            if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in NUMEXPR_FUNCTIONS and not node.keywords
            ):
                raise ConfigError(
                    f"data.inputs: {expr!r} calls an unknown function; valid: {', '.join(sorted(NUMEXPR_FUNCTIONS))}"
                )
            if isinstance(node, ast.Name) and node.id not in NUMEXPR_FUNCTIONS:
                if node.id not in self.index:
                    raise ConfigError(
                        f"data.inputs: {expr!r} names unknown band {node.id!r}; valid bands: {', '.join(self.index)}"
                    )
                used.append(node.id)
        return expr.strip(), sorted(set(used))

    def apply(self, images: Mapping[str, np.ndarray]) -> np.ndarray:
        """``float32 (N, H, W)`` input channels from ``{image name: array (C, H, W)}``."""
        first = next(iter(images.values()))
        out = np.empty((self.channels, *first.shape[1:]), dtype=np.float32)
        for c in range(self.channels):
            out[c] = self.evaluate(images, c)
        return out

    def evaluate(self, images: Mapping[str, np.ndarray], channel: int) -> np.ndarray:
        """One input channel ``(H, W)``: the band itself, or the expression evaluated in float32."""
        expr, used = self._compiled[channel]
        plain = self.index.get(expr)
        if plain is not None:
            return images[plain[0]][plain[1]]
        local = {b: images[self.index[b][0]][self.index[b][1]].astype(np.float32, copy=False) for b in used}
        result = numexpr.evaluate(expr, local_dict=local, global_dict={})
        return np.broadcast_to(np.asarray(result, dtype=np.float32), first_shape(images))


def first_shape(images: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    """(H, W) of the images of a sample."""
    return next(iter(images.values())).shape[1:]
