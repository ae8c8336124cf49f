"""The retrieval model: CLIP text encoder + a CLIP video encoder with optional token reduction."""

from __future__ import annotations

from torch import Tensor, nn

from centerclip.model.clip import CLIP
from centerclip.model.video_encoder import TokenReduction, encode_segments, pool_segments


class RetrievalModel(nn.Module):
    """Scores texts against videos by the cosine of their normalised features times exp(logit_scale).

    ``clip`` is an unmodified :class:`~centerclip.model.clip.CLIP`; ``reduction`` selects meanP,
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

    def forward(self, video: Tensor, mask: Tensor, tokens: Tensor) -> Tensor:
        """Similarity logits [N_text, B_video] for a batch."""
        t = self.encode_text(tokens)
        v = self.encode_video(video, mask)
        return self.clip.logit_scale.exp() * t @ v.t()
