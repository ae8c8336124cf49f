"""Small inputs shared by the model-core tests: a tiny CLIP, a padded video batch, separated blobs,
and an exact comparison of two clusterings.

Used by test_video_encoder.py, test_baselines.py, test_clustering.py, test_device.py (the same checks on
CPU and on CUDA), test_paper_figures.py and conftest.py's ``clip`` fixture, so that every file tests the
same model and data.
"""

from __future__ import annotations

import torch

from centerclip.model.clip import CLIP, CLIPConfig
from centerclip.model.video_encoder import TokenReduction, encode_segments, pool_segments

TINY = CLIPConfig(embed_dim=32, image_resolution=64, vision_layers=4, vision_width=64, vision_patch_size=16,
                  context_length=16, vocab_size=49408, transformer_width=64, transformer_heads=1,
                  transformer_layers=1)


def video_batch(b: int = 2, t: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU video ``[b, t, 3, 64, 64]`` and frame mask ``[b, t]``; the second video has 3 real frames."""
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, t, 3, 64, 64, generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 3:] = False
    return video, mask


def encode(clip: CLIP, reduction: TokenReduction, video: torch.Tensor, mask: torch.Tensor,
           training: bool = False) -> torch.Tensor:
    """Video features ``[b, E]`` on the model's device (inputs are moved there)."""
    dev = next(clip.parameters()).device
    feats, seg_mask = encode_segments(clip.visual, video.to(dev), mask.to(dev), reduction, training)
    return pool_segments(feats, seg_mask)


def blobs(b: int, per: int, d: int, seed: int, k: int = 4, spread: float = 0.1,
          sep: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``b`` rows of ``k`` well-separated gaussian blobs of ``per`` tokens (``d >= k``), shuffled.

    Returns:
        tokens ``[b, k * per, d]`` and blob ids ``[b, k * per]``, on the CPU.
    """
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(k, d) * sep
    ids = torch.arange(k).repeat_interleave(per)
    xs, ys = [], []
    for _ in range(b):
        perm = torch.randperm(k * per, generator=g)
        xs.append(centers[ids[perm]] + spread * torch.randn(k * per, d, generator=g))
        ys.append(ids[perm])
    return torch.stack(xs), torch.stack(ys)


def same_partition(labels: torch.Tensor, truth: torch.Tensor) -> bool:
    """True when the clustering equals the ground-truth grouping up to renaming (any device)."""
    for lab, tru in zip(labels.cpu(), truth.cpu()):
        pairs = set(zip(lab.tolist(), tru.tolist()))
        if len(pairs) != len(set(lab.tolist())) or len(pairs) != len(set(tru.tolist())):
            return False
    return True


def assert_same_clusters(a, b) -> None:
    """Two ``Clusters`` (any devices) with the same medoids and the same labels, exactly."""
    assert torch.equal(a.medoids.cpu(), b.medoids.cpu()), "medoids differ"
    assert torch.equal(a.labels.cpu(), b.labels.cpu()), "labels differ"
