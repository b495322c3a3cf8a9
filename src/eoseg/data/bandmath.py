"""Band math: model input channels as numexpr expressions over named bands (``vh``, ``(vh+vv)/2``).

Expressions may only use band names, numbers, arithmetic / comparison operators and numexpr functions;
anything else (attributes, indexing, unknown names) is a :class:`ConfigError` that lists the valid names.

Declared scales (``data.scale``, SAR): an image declared ``db`` (``10 log10`` of power) or ``amplitude``
(square root of power) is converted to linear power before the expressions run, so expressions such as
``10*log10(vv)`` or ``(vh+vv)/2`` mean the same whatever the delivery; ``linear`` (the default) is taken as
is. :meth:`BandMath.check` refuses a logarithm of non-positive valid values (naming the band and the
scale to declare) and warns when ``db`` data holds only positive values, as linear power does.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Mapping, Sequence

import numexpr
import numpy as np

from eoseg.errors import ConfigError, InputError

SCALES = ("linear", "db", "amplitude")
LOGS = frozenset({"log", "log10", "log1p"})


class ScaleWarning(UserWarning):
    """Image values do not look like the declared scale (e.g. ``db`` data that holds linear power)."""

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

    def __init__(
        self, inputs: Sequence[str], bands: Mapping[str, Sequence[str]], scales: Mapping[str, str] | None = None
    ) -> None:
        self.bands = {image: list(names) for image, names in bands.items()}
        self.index = {b: (image, i) for image, names in self.bands.items() for i, b in enumerate(names)}
        self.inputs = list(inputs) or [b for names in self.bands.values() for b in names]
        self.scales = {image: scale for image, scale in (scales or {}).items() if scale != "linear"}
        for image, scale in self.scales.items():
            if image not in self.bands or scale not in SCALES:
                raise ConfigError(f"data.scale.{image}={scale!r}: give an image of data.bands "
                                  f"({', '.join(self.bands)}) and one of {', '.join(SCALES)}")
        self._compiled = [self._check(expr) for expr in self.inputs]
        self._logs = [self._log_bands(expr) for expr, _ in self._compiled]

    @property
    def channels(self) -> int:
        """Number of model input channels."""
        return len(self.inputs)

    def plain_band(self, channel: int) -> tuple[str, int] | None:
        """``(image, band index)`` when input ``channel`` is a band as is (not rescaled), else None."""
        plain = self.index.get(self.inputs[channel].strip())
        return None if plain is None or plain[0] in self.scales else plain

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

    @staticmethod
    def _log_bands(expr: str) -> list[str]:
        """Bands that appear inside a logarithm of ``expr``."""
        found: set[str] = set()
        for node in ast.walk(ast.parse(expr, mode="eval")):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in LOGS:
                found |= {n.id for a in node.args for n in ast.walk(a) if isinstance(n, ast.Name)}
        return sorted(found - NUMEXPR_FUNCTIONS)

    def _band(self, images: Mapping[str, np.ndarray], band: str) -> np.ndarray:
        """One band as the expressions see it: linear power for images declared ``db`` or ``amplitude``."""
        image, i = self.index[band]
        values = images[image][i]
        scale = self.scales.get(image)
        if scale == "db":
            return numexpr.evaluate("10 ** (x / 10)", local_dict={"x": values.astype(np.float32, copy=False)})
        if scale == "amplitude":
            return np.square(values, dtype=np.float32)
        return values

    def check(
        self, images: Mapping[str, np.ndarray], valid: np.ndarray, where: Mapping[str, str], warn: bool = True
    ) -> None:
        """Refuse logarithms of non-positive valid values; warn (``warn``) when ``db`` data looks like linear power.

        ``where`` names each image's data (its file) in the messages.
        """
        if not valid.any():
            return
        for image, scale in self.scales.items() if warn else ():
            values = images[image][:, valid]
            if scale == "db" and values.size and float(values.min()) > 0:
                warnings.warn(
                    f"{where[image]}: image {image!r} is declared data.scale.{image}=db but holds only positive values "
                    f"({float(values.min()):.3g} to {float(values.max()):.3g}), as linear power does; "
                    f"declare data.scale.{image}=linear if it is",
                    ScaleWarning,
                    stacklevel=2,
                )
        for c, bands in enumerate(self._logs):
            for band in bands:
                image, i = self.index[band]
                if self.scales.get(image) == "db":
                    continue  # 10 ** (x / 10) is positive
                values = images[image][i][valid]
                if values.size and float(values.min()) <= 0:
                    declared = self.scales.get(image, "linear")
                    hint = (f"the values look like dB: declare data.scale.{image}=db" if float(values.max()) <= 0
                            or np.median(values) < 0 else
                            "declare their nodata (data.nodata) or guard the log, e.g. log10(where(x > 0, x, 1e-8))")
                    raise InputError(
                        f"{where[image]}: data.inputs {self.inputs[c]!r} takes a log of band {band!r} (declared "
                        f"{declared}) but it holds non-positive values (min {float(values.min()):.3g}); {hint}"
                    )

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
            return self._band(images, expr)
        local = {b: self._band(images, b).astype(np.float32, copy=False) for b in used}
        result = numexpr.evaluate(expr, local_dict=local, global_dict={})
        return np.broadcast_to(np.asarray(result, dtype=np.float32), first_shape(images))


def first_shape(images: Mapping[str, np.ndarray]) -> tuple[int, ...]:
    """(H, W) of the images of a sample."""
    return next(iter(images.values())).shape[1:]
