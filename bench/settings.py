"""The benchmarked encoder settings (the paper's Tables 1-4) and their theoretical FLOP count.

A *setting* is a backbone shape, a frame count and a token reduction (meanP baseline, CenterCLIP
k-medoids or spectral, pooling, sparse sampling). ``bench_encoder.py`` and ``bench_memory.py``
share these lists, so the two tables have the same rows.

FLOP model (multiply-accumulates of the vision tower; ``flop_ratio`` divides by the baseline):

* patch embedding: per frame ``P · 3p² · W`` (a conv with stride = kernel = p);
* one transformer block on a sequence of ``L`` tokens of width ``W``: ``12·L·W²`` (QKV 3, output
  projection 1, MLP 8) + ``2·L²·W`` (the quadratic attention term: QKᵀ and AV);
* blocks before the reduction stage run on T sequences of ``1 + P`` tokens, blocks after it on
  S sequences of ``1 + K`` tokens (pooling: ``1 + P``, the mean over the segment's frames);
* the projection head on each output CLS token: ``W·E``.

Excluded: layer norms, softmax, GELU, and **the clustering itself** (k-medoids / spectral cost
is measured by ``bench_clustering.py``, not counted here), so the measured time ratio of a
clustering setting can only approach the FLOP ratio from above.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

# ViT shapes of OpenAI CLIP (random weights are enough for time and memory).
BACKBONES = {
    "ViT-B/32": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=32,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                     transformer_layers=12),
    "ViT-B/16": dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=16,
                     context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8,
                     transformer_layers=12),
}
# --quick: same token geometry (224 px, patch 32/16, 12 blocks, stage after block 6) on a narrow
# model (width 128, 2 heads; text 2 layers), so the whole suite runs in seconds.
QUICK_BACKBONES = {
    name: dict(cfg, vision_width=128, embed_dim=64, transformer_width=64, transformer_heads=2, transformer_layers=2,
               vocab_size=49408)
    for name, cfg in BACKBONES.items()
}


@dataclass(frozen=True)
class Setting:
    group: str  # rows compared with the group's baseline
    backbone: str
    frames: int
    method: str = "meanP"  # meanP | centerclip | pooling | sparse
    algorithm: str = "kmedoids"
    block: int = 6
    segments: int = 0
    clusters: int = 0
    knn: int | None = None
    notes: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        if self.method == "meanP":
            return "baseline meanP"
        if self.method == "pooling":
            return f"pooling (B{self.block}-{self.segments})"
        if self.method == "sparse":
            return f"sparse sampling (B{self.block}-{self.segments},{self.clusters})"
        knn = f", knn={self.knn}" if self.knn else ""
        return f"CenterCLIP {self.algorithm} (B{self.block}-{self.segments},{self.clusters}{knn})"

    @property
    def key(self) -> str:
        """Short stable id for JSON."""
        if self.method == "meanP":
            m = "baseline"
        elif self.method == "centerclip":
            m = self.algorithm
        else:
            m = self.method
        tail = "" if self.method == "meanP" else f"_B{self.block}-{self.segments}" + (
            f"-{self.clusters}" if self.method != "pooling" else "")
        return f"{self.backbone.replace('ViT-', '').replace('/', '')}_T{self.frames}_{m}{tail}"

    def reduction(self):
        from centerclip.model.video_encoder import ClusterStage, TokenReduction

        if self.method == "meanP":
            return TokenReduction("meanP")
        clusters = self.clusters or 1  # pooling ignores K
        stage = ClusterStage(block=self.block, segments=self.segments, clusters=clusters,
                             algorithm=self.algorithm, knn=self.knn)
        return TokenReduction(self.method, (stage,))


def _group(group: str, backbone: str, frames: int, segments: int, k: int, knn: int, methods) -> list[Setting]:
    out = [Setting(group, backbone, frames)]
    for m in methods:
        if m == "kmedoids":
            out.append(Setting(group, backbone, frames, "centerclip", "kmedoids", 6, segments, k))
        elif m == "spectral":
            out.append(Setting(group, backbone, frames, "centerclip", "spectral", 6, segments, k, knn))
        elif m == "pooling":
            out.append(Setting(group, backbone, frames, "pooling", block=6, segments=segments))
        elif m == "sparse":
            out.append(Setting(group, backbone, frames, "sparse", block=6, segments=segments, clusters=k))
        else:
            raise ValueError(m)
    return out


ALL = ("kmedoids", "spectral", "pooling", "sparse")
MSRVTT_B32 = "MSR-VTT/MSVD, ViT-B/32, 12 frames"
MSRVTT_B16 = "MSR-VTT/MSVD, ViT-B/16, 12 frames"
ANET_B32 = "ActivityNet, ViT-B/32, 60 frames"


def settings(b16_methods=("kmedoids", "spectral")) -> list[Setting]:
    """Every benchmarked row, grouped; each group starts with its baseline."""
    anet = [Setting(ANET_B32, "ViT-B/32", 60),
            Setting(ANET_B32, "ViT-B/32", 60, "centerclip", "kmedoids", 6, 15, 49),
            Setting(ANET_B32, "ViT-B/32", 60, "centerclip", "kmedoids", 6, 12, 49)]
    return (_group(MSRVTT_B32, "ViT-B/32", 12, 4, 49, 15, ALL)
            # spectral kNN: 5 x frames per segment, +5 for ViT-B/16 (as the original code and config/experiments.yaml)
            + _group(MSRVTT_B16, "ViT-B/16", 12, 4, 160, 20, b16_methods)
            + anet)


def encoder_macs(backbone: dict, s: Setting) -> float:
    """Multiply-accumulates of the vision tower for ONE video under setting ``s`` (see module doc)."""
    w, p, layers = backbone["vision_width"], backbone["vision_patch_size"], backbone["vision_layers"]
    patches = (backbone["image_resolution"] // p) ** 2
    e = backbone["embed_dim"]
    t = s.frames

    def block(seqs: int, length: int) -> float:
        return seqs * (12 * length * w * w + 2 * length * length * w)

    embed = t * patches * 3 * p * p * w
    if s.method == "meanP":
        return embed + layers * block(t, 1 + patches) + t * w * e
    kept = patches if s.method == "pooling" else min(s.clusters, t // s.segments * patches)
    before = s.block * block(t, 1 + patches)
    after = (layers - s.block) * block(s.segments, 1 + kept)
    return embed + before + after + s.segments * w * e


def flop_ratio(s: Setting, backbone: dict | None = None) -> float:
    """Theoretical FLOP ratio of setting ``s`` to the meanP baseline (same backbone and frames);
    clustering's own cost excluded."""
    bb = backbone or BACKBONES[s.backbone]
    base = Setting(s.group, s.backbone, s.frames)
    return encoder_macs(bb, s) / encoder_macs(bb, base)


def add_selection_args(p: argparse.ArgumentParser, b16_default: str, b16_help: str) -> None:
    """The command-line options that pick rows and batch sizes (shared by bench_encoder / bench_memory)."""
    p.add_argument("--videos-b32", type=int, default=0, help="videos per batch, ViT-B/32 12 frames")
    p.add_argument("--videos-b16", type=int, default=0, help="videos per batch, ViT-B/16 12 frames")
    p.add_argument("--videos-anet", type=int, default=0, help="videos per batch, ViT-B/32 60 frames")
    p.add_argument("--b16", default=b16_default, help=b16_help)
    p.add_argument("--groups", default="", help="only groups whose name contains one of these (;-separated)")


def select(args: argparse.Namespace, sizes: tuple[int, int, int]) -> tuple[list[Setting], dict[str, int]]:
    """The settings the options ask for, in order, and the videos per batch of each group
    (``sizes``: defaults for ViT-B/32, ViT-B/16, ActivityNet)."""
    n_videos = {MSRVTT_B32: args.videos_b32 or sizes[0], MSRVTT_B16: args.videos_b16 or sizes[1],
                ANET_B32: args.videos_anet or sizes[2]}
    rows = settings(tuple(m for m in args.b16.split(",") if m))
    if args.groups:
        wanted = [g.strip() for g in args.groups.split(";")]
        rows = [s for s in rows if any(w in s.group for w in wanted)]
    return rows, n_videos
