"""The retrieval model: CLIP text encoder + a CLIP video encoder with optional token reduction."""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from centerclip.clip import CLIP, CLIPConfig
from centerclip.clip import load as load_clip
from centerclip.video_encoder import TokenReduction, encode_segments, pool_segments

if TYPE_CHECKING:
    from centerclip.run_config import RunConfig


class RetrievalModel(nn.Module):
    """Scores texts against videos by the cosine of their normalised features times exp(logit_scale).

    ``clip`` is an unmodified :class:`~centerclip.clip.CLIP`; ``reduction`` selects meanP,
    CenterCLIP or a baseline. The state dict is CLIP's own under the ``clip.`` prefix.
    """

    def __init__(self, clip: CLIP, reduction: TokenReduction):
        super().__init__()
        self.clip = clip
        self.reduction = reduction

    def encode_text(self, tokens: Tensor) -> Tensor:
        """tokens long [N, L] -> L2-normalised features [N, E]."""
        feats = self.clip.encode_text(tokens)
        return feats / feats.norm(dim=-1, keepdim=True)

    def encode_video(self, video: Tensor, mask: Tensor) -> Tensor:
        """video float [B, T, 3, H, W], mask bool [B, T] -> L2-normalised features [B, E]."""
        feats, seg_mask = encode_segments(self.clip.visual, video, mask, self.reduction, self.training)
        return pool_segments(feats, seg_mask)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike | Mapping) -> tuple["RetrievalModel", "RunConfig"]:
        """The model of a training checkpoint of this package (``checkpoint.pt`` / ``last.pt``) in eval
        mode on the CPU, and the run's config it records. ``checkpoint``: its path, or what
        :func:`read_checkpoint` returned for it.

        Raises:
            ValueError: not such a checkpoint (the message names the file).
        """
        from centerclip.run_config import RunConfig

        ckpt = read_checkpoint(checkpoint) if not isinstance(checkpoint, Mapping) else checkpoint
        try:
            cfg = RunConfig.from_dict(ckpt["run_config"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{ckpt.get('path', 'checkpoint')}: not a training checkpoint of this package ({exc})") from None
        model = cls(build_clip(cfg.model), cfg.reduction)
        model.load_state_dict(ckpt["model"])
        return model.eval(), cfg

    def forward(self, video: Tensor, mask: Tensor, tokens: Tensor) -> Tensor:
        """Similarity logits [N_text, B_video] for a batch."""
        t = self.encode_text(tokens)
        v = self.encode_video(video, mask)
        return self.clip.logit_scale.exp() * t @ v.t()


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The contents of a training checkpoint of this package (``run_config``, ``model``, ``summary``,
    ...) on the CPU, with ``path`` added; ValueError naming the file for anything else."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ValueError(f"{path}: not a training checkpoint of this package ({exc})") from None
    if not isinstance(ckpt, dict) or "run_config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path}: not a training checkpoint of this package (no run_config / model)")
    return {**ckpt, "path": str(path)}


def build_clip(model_cfg: dict) -> CLIP:
    """CLIP from the ``model`` section of a run config: ``pretrained`` (a checkpoint path) or
    ``random`` (every CLIPConfig field; the demo's tiny randomly initialised model)."""
    if model_cfg.get("pretrained"):
        return load_clip(model_cfg["pretrained"])
    if "random" not in model_cfg:
        raise ValueError("model config needs 'pretrained: <checkpoint path>' or 'random: {CLIPConfig fields}'")
    torch.manual_seed(int(model_cfg.get("init_seed", 0)))
    return CLIP(CLIPConfig(**model_cfg["random"]))
