"""CLIP ViT image and text encoders with OpenAI's checkpoint layout, batch-first.

Parameter names match OpenAI's released checkpoints key for key, so ``ViT-B-32.pt`` / ``ViT-B-16.pt``
(TorchScript archives) and open_clip's OpenAI-style ViT state dicts load unchanged. Unlike OpenAI's
code, every transformer block works on ``[batch, tokens, width]``; the video encoder relies on this to run
blocks on re-grouped token sequences (CenterCLIP keeps fewer tokens after clustering).

Shapes: ``N`` batch, ``L`` tokens, ``D`` width, ``E`` joint embedding dimension.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CLIP",
    "CLIPConfig",
    "LayerNorm",
    "QuickGELU",
    "ResidualAttentionBlock",
    "Transformer",
    "VisionTransformer",
    "config_from_state_dict",
    "load",
]

HEAD_DIM = 64
# Released archives carry these scalars next to the weights; they duplicate what the shapes say.
_SCALAR_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class CLIPConfig:
    """Every dimension of a CLIP ViT model.

    The number of vision heads is not a field: as in OpenAI CLIP it is ``vision_width // 64``.
    ViT-B/32 is ``CLIPConfig(512, 224, 12, 768, 32, 77, 49408, 512, 8, 12)``.
    """

    embed_dim: int
    image_resolution: int
    vision_layers: int
    vision_width: int
    vision_patch_size: int
    context_length: int
    vocab_size: int
    transformer_width: int
    transformer_heads: int
    transformer_layers: int

    def __post_init__(self) -> None:
        if self.vision_width < HEAD_DIM or self.vision_width % HEAD_DIM:
            raise ValueError(
                f"vision_width must be a positive multiple of {HEAD_DIM} (heads = width // 64), "
                f"got {self.vision_width}"
            )
        if self.image_resolution % self.vision_patch_size:
            raise ValueError(
                f"image_resolution {self.image_resolution} is not a multiple of "
                f"vision_patch_size {self.vision_patch_size}"
            )
        if self.transformer_heads < 1 or self.transformer_width % self.transformer_heads:
            raise ValueError(
                f"transformer_width {self.transformer_width} is not divisible by "
                f"transformer_heads {self.transformer_heads}"
            )

    @property
    def vision_heads(self) -> int:
        return self.vision_width // HEAD_DIM

    @property
    def grid(self) -> int:
        """Patches per image side."""
        return self.image_resolution // self.vision_patch_size


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back, so fp16/bf16 weights and autocast stay stable."""

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        out = F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps)
        return out.to(x.dtype)


class QuickGELU(nn.Module):
    """The sigmoid approximation of GELU that CLIP was trained with (not interchangeable with GELU)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameter names, batch-first.

    Written on ``F.scaled_dot_product_attention`` rather than ``nn.MultiheadAttention`` to avoid the
    latter's fast-path special cases and inverted boolean-mask convention.
    """

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.width = width
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)
        # Same initialisation as nn.MultiheadAttention, which OpenAI's vision blocks keep.
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """``x``: [N, L, D] -> [N, L, D]; ``attn_mask``: see ``ResidualAttentionBlock.forward``."""
        n, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                raise TypeError(
                    "attn_mask must be an additive float mask (0 = attend, -inf = blocked); "
                    "boolean masks are ambiguous between PyTorch APIs and are not accepted"
                )
            if attn_mask.dim() == 3:  # [N, L, L]: add the head axis so it broadcasts per sample
                attn_mask = attn_mask.unsqueeze(1)
            # SDPA wants the mask in the query dtype (bf16 under autocast).
            attn_mask = attn_mask.to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, width))


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = Attention(width, heads)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, 4 * width))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(4 * width, width))
        self.ln_2 = LayerNorm(width)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """Args:
            x: [N, L, D] tokens.
            attn_mask: additive float mask broadcastable to [N, heads, L, L] after a 3-D mask [N, L, L]
                gets a head axis; e.g. [L, L] causal with -inf above the diagonal. None attends everywhere.

        Returns:
            [N, L, D].
        """
        x = x + self.attn(self.ln_1(x), attn_mask)
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    """A stack of ``ResidualAttentionBlock`` in ``self.resblocks`` (batch-first)."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.width = width
        self.layers = layers
        self.heads = heads
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads) for _ in range(layers))

    def forward(self, x: Tensor, attn_mask: Tensor | None = None) -> Tensor:
        """[N, L, D] -> [N, L, D]."""
        for block in self.resblocks:
            x = block(x, attn_mask)
        return x


class VisionTransformer(nn.Module):
    """CLIP's ViT image encoder, split into ``embed`` / blocks / ``head`` for the video encoder."""

    def __init__(
        self, input_resolution: int, patch_size: int, width: int, layers: int, heads: int, output_dim: int,
        initialize: bool = True,
    ) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.patch_size = patch_size
        self.grid = input_resolution // patch_size
        self.width = width
        self.layers = layers
        self.output_dim = output_dim
        scale = width**-0.5

        def drawn(*shape: int) -> nn.Parameter:  # uninitialised when weights are loaded over it
            return nn.Parameter(scale * torch.randn(*shape) if initialize else torch.empty(*shape))

        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        self.class_embedding = drawn(width)
        self.positional_embedding = drawn(self.grid**2 + 1, width)
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = LayerNorm(width)
        self.proj = drawn(width, output_dim)

    def embed(self, images: Tensor) -> Tensor:
        """Patch tokens with the class token first: [N, 3, H, W] -> [N, 1 + grid², width] (after ln_pre)."""
        expected = (3, self.input_resolution, self.input_resolution)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"expected images of shape [N, {', '.join(map(str, expected))}], got {list(images.shape)}; "
                "resize and centre-crop to the model's input resolution first"
            )
        x = self.conv1(images.to(self.conv1.weight.dtype))  # [N, width, grid, grid]
        x = x.flatten(2).transpose(1, 2)  # raster order, row by row
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1)
        return self.ln_pre(x + self.positional_embedding)

    def head(self, cls_tokens: Tensor) -> Tensor:
        """Joint-space image feature (not normalised): [N, width] -> [N, embed_dim]."""
        return self.ln_post(cls_tokens) @ self.proj

    def forward(self, images: Tensor) -> Tensor:
        """[N, 3, H, W] -> [N, embed_dim]."""
        return self.head(self.transformer(self.embed(images))[:, 0])


class CLIP(nn.Module):
    """CLIP with a ViT image tower; state-dict keys identical to OpenAI's checkpoints.

    Randomly initialised as in OpenAI CLIP's ``initialize_parameters``; use ``from_state_dict`` or
    ``load`` for pretrained weights.
    """

    def __init__(self, config: CLIPConfig, initialize: bool = True) -> None:
        """``initialize=False`` leaves the parameters uninitialised (for weights loaded over them): no
        random draws, so building on the meta device runs no meta kernel, whose first use imports
        torch._dynamo (~0.8 s of every job's start-up)."""
        super().__init__()
        self.config = config
        self.visual = VisionTransformer(
            input_resolution=config.image_resolution,
            patch_size=config.vision_patch_size,
            width=config.vision_width,
            layers=config.vision_layers,
            heads=config.vision_heads,
            output_dim=config.embed_dim,
            initialize=initialize,
        )
        self.transformer = Transformer(
            config.transformer_width, config.transformer_layers, config.transformer_heads
        )
        vocab, width = config.vocab_size, config.transformer_width
        self.token_embedding = (nn.Embedding(vocab, width) if initialize
                                else nn.Embedding(vocab, width, _weight=torch.empty(vocab, width)))
        self.positional_embedding = nn.Parameter(torch.empty(config.context_length, config.transformer_width))
        self.ln_final = LayerNorm(config.transformer_width)
        self.text_projection = nn.Parameter(torch.empty(config.transformer_width, config.embed_dim))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        if initialize:
            self._initialize_parameters()

    def _initialize_parameters(self) -> None:
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        width, layers = self.transformer.width, self.transformer.layers
        # Residual-branch outputs are scaled down with depth so the residual stream does not grow with it.
        proj_std = width**-0.5 * (2 * layers) ** -0.5
        attn_std = width**-0.5
        fc_std = (2 * width) ** -0.5
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=width**-0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def encode_image(self, images: Tensor) -> Tensor:
        """Image features (not normalised): [N, 3, H, W] -> [N, E]."""
        return self.visual(images)

    def encode_text(self, tokens: Tensor) -> Tensor:
        """Text features (not normalised) read at each row's end token: [N, L] token ids -> [N, E].

        ``L`` may be anything up to ``context_length``; the end token must be the row's largest id.
        """
        length = tokens.shape[-1]
        if length > self.config.context_length:
            raise ValueError(f"token rows have length {length} > context_length {self.config.context_length}")
        x = self.token_embedding(tokens) + self.positional_embedding[:length]
        causal = torch.full((length, length), float("-inf"), device=x.device).triu_(1)
        x = self.transformer(x, causal)
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
        # ln_final is per token, so applying it after picking the end token gives the same numbers.
        return self.ln_final(x) @ self.text_projection

    def forward(self, images: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Scaled cosine similarities: ([N_img, N_txt] logits per image, [N_txt, N_img] per text)."""
        image_features = F.normalize(self.encode_image(images), dim=-1)
        text_features = F.normalize(self.encode_text(tokens), dim=-1)
        logits_per_image = self.logit_scale.exp() * image_features @ text_features.t()
        return logits_per_image, logits_per_image.t()

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], config: CLIPConfig | None = None) -> CLIP:
        """Build a model whose dimensions are inferred from ``state_dict`` and load it strictly.

        ``config`` overrides the inference, for models whose text heads are not width // 64.

        Accepts OpenAI's keys, optionally behind one leading ``module.`` (DataParallel); the scalars
        ``input_resolution``/``context_length``/``vocab_size`` and any ``attn_mask`` buffers are ignored.
        Weights become fp32 CPU copies (the input is not modified); move the model afterwards.

        Raises:
            ValueError: not a CLIP ViT state dict, naming the missing, unexpected or mis-shaped keys.
        """
        sd = _normalise_state_dict(state_dict)
        if config is None:
            config = config_from_state_dict(sd)
        # Build on the meta device: random initialisation of a ViT-B would be thrown away anyway.
        with torch.device("meta"):
            model = cls(config, initialize=False)
        expected = model.state_dict()
        missing = sorted(set(expected) - set(sd))
        unexpected = sorted(set(sd) - set(expected))
        if missing or unexpected:
            problems = []
            if missing:
                problems.append(f"missing keys {_preview(missing)}")
            if unexpected:
                problems.append(f"unexpected keys {_preview(unexpected)}")
            raise ValueError(f"not a CLIP ViT checkpoint of the inferred shape: {'; '.join(problems)}")
        mismatched = [
            f"{k}: {list(sd[k].shape)} (expected {list(v.shape)})"
            for k, v in expected.items()
            if sd[k].shape != v.shape
        ]
        if mismatched:
            raise ValueError(f"CLIP checkpoint has tensors of inconsistent shape: {_preview(mismatched)}")
        weights = {k: v.detach().to(device="cpu", dtype=torch.float32, copy=True) for k, v in sd.items()}
        model.load_state_dict(weights, strict=True, assign=True)
        return model


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... ({len(items) - limit} more)' if len(items) > limit else ''}]"


def _normalise_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip a leading ``module.`` and drop the non-weight entries released checkpoints carry."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(f"expected a state dict (mapping of names to tensors), got {type(state_dict).__name__}")
    keys = list(state_dict)
    prefix = "module."
    strip = bool(keys) and all(isinstance(k, str) and k.startswith(prefix) for k in keys)
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        name = key[len(prefix) :] if strip else key
        if name in _SCALAR_KEYS or name == "attn_mask" or name.endswith(".attn_mask"):
            continue
        if not isinstance(value, Tensor):
            raise ValueError(f"entry {key!r} is a {type(value).__name__}, not a tensor")
        out[name] = value
    return out


def _block_count(sd: Mapping[str, Tensor], prefix: str) -> int:
    indices = {int(k[len(prefix) :].split(".")[0]) for k in sd if k.startswith(prefix)}
    if indices != set(range(len(indices))):
        raise ValueError(f"blocks under {prefix!r} are not numbered 0..n-1: {sorted(indices)}")
    return len(indices)


def config_from_state_dict(state_dict: Mapping[str, Tensor]) -> CLIPConfig:
    """Infer every dimension from tensor shapes (works on meta tensors).

    Vision: width from ``visual.conv1.weight`` [width, 3, patch, patch]; grid from the rows of
    ``visual.positional_embedding`` (1 + grid²); layers by counting ``visual.transformer.resblocks.N``.
    Text: width from ``ln_final.weight``, vocab from ``token_embedding.weight``, context from
    ``positional_embedding``, layers by counting ``transformer.resblocks.N``; embed_dim from
    ``text_projection``. Heads are width // 64 in both towers, as in OpenAI CLIP.
    """
    sd = _normalise_state_dict(state_dict)
    if any(k.startswith(("visual.layer1.", "visual.attnpool.")) for k in sd):
        raise ValueError(
            "not a CLIP ViT checkpoint: the visual tower is a ResNet (ModifiedResNet keys "
            "visual.layer1.*, visual.attnpool.*); only ViT backbones such as ViT-B/32 and ViT-B/16 are supported"
        )
    required = [
        "visual.conv1.weight",
        "visual.class_embedding",
        "visual.positional_embedding",
        "visual.proj",
        "visual.transformer.resblocks.0.attn.in_proj_weight",
        "token_embedding.weight",
        "positional_embedding",
        "ln_final.weight",
        "text_projection",
        "transformer.resblocks.0.attn.in_proj_weight",
    ]
    missing = [k for k in required if k not in sd]
    if missing:
        raise ValueError(f"not a CLIP ViT checkpoint: missing keys {_preview(missing)}")

    conv = sd["visual.conv1.weight"]
    if conv.dim() != 4 or conv.shape[1] != 3 or conv.shape[2] != conv.shape[3]:
        raise ValueError(f"visual.conv1.weight has shape {list(conv.shape)}, expected [width, 3, patch, patch]")
    vision_width, patch = conv.shape[0], conv.shape[-1]
    n_positions = sd["visual.positional_embedding"].shape[0]
    grid = round((n_positions - 1) ** 0.5)
    if grid * grid + 1 != n_positions:
        raise ValueError(
            f"visual.positional_embedding has {n_positions} rows, not 1 + a square number of patches"
        )
    transformer_width = sd["ln_final.weight"].shape[0]
    if transformer_width % HEAD_DIM:
        raise ValueError(
            f"text width {transformer_width} is not a multiple of {HEAD_DIM}, so the number of text heads "
            "cannot be inferred; pass config= explicitly"
        )
    return CLIPConfig(
        embed_dim=sd["text_projection"].shape[1],
        image_resolution=grid * patch,
        vision_layers=_block_count(sd, "visual.transformer.resblocks."),
        vision_width=vision_width,
        vision_patch_size=patch,
        context_length=sd["positional_embedding"].shape[0],
        vocab_size=sd["token_embedding.weight"].shape[0],
        transformer_width=transformer_width,
        transformer_heads=transformer_width // HEAD_DIM,
        transformer_layers=_block_count(sd, "transformer.resblocks."),
    )


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        # torch.save zips hold only data.pkl + tensors; TorchScript adds serialised code and constants.
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    if _is_torchscript(path):
        with warnings.catch_warnings():
            # torch.jit is deprecated, but it is the only reader for OpenAI's released archives.
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                return obj[wrapper]
        return obj
    raise ValueError(f"holds a {type(obj).__name__}, not a state dict")


def load(path: str | Path, device: str | torch.device = "cpu") -> CLIP:
    """Load a pretrained CLIP ViT in fp32.

    Reads OpenAI's TorchScript archives (``ViT-B-32.pt``, ``ViT-B-16.pt`` as released) and plain
    ``torch.save`` state dicts, bare or wrapped as ``{"state_dict": sd}`` / ``{"model": sd}``, with
    OpenAI's key names (open_clip's OpenAI-style ViT checkpoints qualify).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a CLIP ViT checkpoint; the message names the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP checkpoint {path} does not exist")
    try:
        state_dict = _read_state_dict(path)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except Exception as exc:  # torch raises a zoo of types (UnpicklingError, RuntimeError, EOFError, ...)
        raise ValueError(
            f"{path}: cannot be read as a PyTorch checkpoint or TorchScript archive "
            f"({type(exc).__name__}: {exc}); expected OpenAI's ViT-B-32.pt/ViT-B-16.pt or a CLIP state dict"
        ) from None
    try:
        model = CLIP.from_state_dict(state_dict)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return model.to(device)
