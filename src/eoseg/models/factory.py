"""Model factory: an smp architecture x encoder, any number of input channels, eoseg's named heads.

``build_model`` borrows the encoder and decoder of the segmentation-models-pytorch model named by
``model.arch`` / ``model.encoder`` and adds one head per entry of ``model.heads``. Nothing is ever
downloaded: the encoder starts from random weights, or from the local file ``model.encoder_weights``.
"""

from __future__ import annotations

import inspect

from torch import Tensor, nn

from eoseg.config.activation import activation_of, main_head
from eoseg.config.architectures import architectures, check_encoder, resolve_architecture
from eoseg.config.schema import HeadSpec, ModelSpec, TaskSpec
from eoseg.errors import ConfigError
from eoseg.models.heads import build_head
from eoseg.models.siamese import SiameseEncoder, levels_read_by
from eoseg.models.weights import load_encoder_weights

ARCHITECTURES: dict[str, type[nn.Module]] = architectures()
"""Architecture name -> smp class (:func:`eoseg.config.architectures.architectures`, which ``eoseg config show`` and
:func:`resolve_architecture` check ``model.arch`` against)."""


class MultiHeadModel(nn.Module):
    """Encoder -> decoder -> named heads; ``forward`` returns ``{head name: tensor}``.

    Dense heads read the decoder output at input resolution; image-level, scalar and direction heads read
    the deepest encoder features. Without dense heads the decoder is dropped (a plain classifier).
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module | None,
        heads: dict[str, nn.Module],
        specs: dict[str, HeadSpec],
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.heads = nn.ModuleDict(heads)
        self.dense = {name for name, spec in specs.items() if spec.kind == "dense"}

    @property
    def backbone(self) -> nn.Module:
        """The smp encoder itself (inside the siamese wrapper for pairs): where encoder weights load."""
        return self.encoder.encoder if isinstance(self.encoder, SiameseEncoder) else self.encoder

    @property
    def output_stride(self) -> int:
        """Input height and width must be multiples of this."""
        return int(self.encoder.output_stride)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        size = (x.shape[-2], x.shape[-1])
        stride = self.output_stride
        if size[0] % stride or size[1] % stride:
            raise ValueError(
                f"input size {size[0]}x{size[1]} is not a multiple of the model's stride {stride}"
            )
        features = self.encoder(x)
        decoded = self.decoder(features) if self.decoder is not None else None
        return {
            name: head(decoded, size) if name in self.dense else head(features[-1])
            for name, head in self.heads.items()
        }


def _head_geometry(segmentation_head: nn.Module) -> tuple[int, int]:
    """(decoder output channels, conv kernel size) read from the smp model's own segmentation head."""
    convs = [m for m in segmentation_head.modules() if isinstance(m, nn.Conv2d)]
    return convs[0].in_channels, convs[-1].kernel_size[0]


_SET_BY_EOSEG = {
    "self",
    "encoder_name",
    "encoder_weights",
    "in_channels",
    "classes",
    "activation",
    "aux_params",
}


def _check_arch_params(arch: type[nn.Module], params: dict) -> None:
    """smp swallows unknown keyword arguments; refuse them here with the valid names."""
    accepted = [
        p
        for p, v in inspect.signature(arch).parameters.items()
        if p not in _SET_BY_EOSEG and v.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ConfigError(
            f"model.arch_params: {', '.join(unknown)} not accepted by {arch.__name__}; "
            f"valid: {', '.join(accepted)}"
        )


def _check_task(model: ModelSpec, task: TaskSpec) -> None:
    """The mask head must fit the task: a binary task's has 1 channel (sigmoid, then the target's extra
    channels such as boundary and contact: channel 0 is the object) or 2 (softmax)."""
    main = main_head(dict(model.heads))
    head = model.heads[main] if main is not None else None
    if head is not None and task.kind == "binary" and head.channels > 2 and activation_of(head, task) == "softmax":
        raise ConfigError(
            f"model.heads.{main}.channels={head.channels}: a binary task's mask head has 1 channel "
            "(sigmoid; more for the target's extra channels, e.g. boundary and contact) or 2 (softmax); "
            "use task.kind=multiclass or multilabel for more classes"
        )


def build_model(model: ModelSpec, task: TaskSpec, in_channels: int) -> MultiHeadModel:
    """Build the network described by ``model`` for ``in_channels`` input channels (2x for siamese pairs).

    ``task`` checks that the mask head fits it (binary: 1 or 2 channels).
    Raises ConfigError for an unknown architecture or encoder, bad ``arch_params``, an odd channel count
    for a siamese model, or encoder weights that do not fit (see :mod:`eoseg.models.weights`).
    """
    _check_task(model, task)
    arch = resolve_architecture(model.arch)
    check_encoder(model.encoder)
    _check_arch_params(arch, model.arch_params)
    if model.siamese is not None:
        if in_channels % 2:
            raise ConfigError(
                f"model.siamese: the input has {in_channels} channels, but a siamese model needs an even "
                "number (pre and post halves); check data.inputs"
            )
        in_channels //= 2
    try:
        net = arch(
            encoder_name=model.encoder,
            encoder_weights=None,
            in_channels=in_channels,
            classes=1,
            **model.arch_params,
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"model: smp could not build {arch.__name__} with encoder {model.encoder!r} and "
            f"arch_params {model.arch_params}: {exc}"
        ) from exc
    decoder_channels, kernel_size = _head_geometry(net.segmentation_head)
    encoder: nn.Module = net.encoder
    has_dense = any(spec.kind == "dense" for spec in model.heads.values())
    if model.siamese is not None:
        deepest_level = len(encoder.out_channels) - 1
        needs_deepest = any(spec.kind != "dense" for spec in model.heads.values())
        probe = has_dense and model.siamese.fusion == "concat"
        mixed = levels_read_by(encoder, net.decoder, in_channels) if probe else set()
        encoder = SiameseEncoder(
            encoder, model.siamese, mixed | ({deepest_level} if needs_deepest else set())
        )
    deepest = encoder.out_channels[-1]
    heads = {
        name: build_head(spec, decoder_channels, deepest, kernel_size) for name, spec in model.heads.items()
    }
    result = MultiHeadModel(encoder, net.decoder if has_dense else None, heads, dict(model.heads))
    if model.encoder_weights is not None:
        load_encoder_weights(result.backbone, model.encoder_weights)
    return result
