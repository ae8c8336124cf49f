"""Retrieval metrics: R@1/5/10 (%), median rank MdR and mean rank MnR, both directions.

Ranks are 1-based and ties are ranked pessimistically: the rank of the truth is
1 + the number of *other* candidates scoring >= the truth. (The original code counted a tied
row several times, which inflates R@K.)
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

KS = (1, 5, 10)


def ranks_of_truth(scores: Tensor, truth: Tensor) -> Tensor:
    """scores float [Q, C], truth long [Q] (candidate index of each query) -> 1-based ranks long [Q]."""
    true_score = scores.gather(1, truth.view(-1, 1))
    ge = (scores >= true_score).sum(dim=1)  # includes the truth itself
    return ge.long()


def summarise_ranks(ranks: Tensor) -> dict[str, float]:
    """Ranks [Q] -> {"R1", "R5", "R10" (in %), "MdR", "MnR"}."""
    r = ranks.double()
    out = {f"R{k}": float((r <= k).double().mean() * 100.0) for k in KS}
    out["MdR"] = float(np.median(r.cpu().numpy()))
    out["MnR"] = float(r.mean())
    return out


def retrieval_metrics(sim: Tensor, text_video: Tensor | None = None) -> dict[str, dict[str, float]]:
    """Text->video and video->text metrics of a similarity matrix ``sim`` [n_text, n_video].

    ``text_video[i]`` is the video index of text i (default: the diagonal, one caption per
    video). With several captions per video (MSVD), text->video ranks each caption against
    all videos, and video->text scores each video against each caption group by the group's
    best caption, then ranks like the square case.
    """
    sim = torch.as_tensor(sim).float()
    n_text, n_video = sim.shape
    if text_video is None:
        if n_text != n_video:
            raise ValueError(f"sim is {n_text}x{n_video}: give text_video for a non-square matrix")
        text_video = torch.arange(n_text)
    text_video = torch.as_tensor(text_video).long().view(-1)
    if text_video.numel() != n_text:
        raise ValueError(f"text_video has {text_video.numel()} entries for {n_text} texts")
    t2v = summarise_ranks(ranks_of_truth(sim, text_video))

    counts = torch.bincount(text_video, minlength=n_video)
    if (counts == 0).any():
        raise ValueError(f"{int((counts == 0).sum())} videos have no text: video->text is undefined")
    if bool((counts == 1).all()) and bool((text_video == torch.arange(n_text)).all()):
        group_scores = sim  # square case: video j vs caption group i is sim[i, j]
    else:
        # best caption of each group, per video: [n_video (groups), n_video]
        group_scores = torch.full((n_video, n_video), float("-inf"))
        group_scores = group_scores.scatter_reduce(0, text_video.view(-1, 1).expand(-1, n_video), sim,
                                                   reduce="amax", include_self=True)
    v2t = summarise_ranks(ranks_of_truth(group_scores.t(), torch.arange(n_video)))
    return {"t2v": t2v, "v2t": v2t}
