"""CenterCLIP's model core: CLIP, its tokenizer, token clustering and the video encoder.

Needs torch, numpy, ftfy and regex only (``pip install centerclip``, no extras); nothing here imports
the rest of the package. The public API::

    from centerclip.model import load, tokenize, RetrievalModel, TokenReduction, ClusterStage

    clip = load("ViT-B-32.pt")   # OpenAI's archive or a state-dict file
    model = RetrievalModel(clip, TokenReduction("centerclip", (ClusterStage(block=6, segments=4, clusters=49),)))

A new token-reduction method is a dataclass registered with ``register_method`` (docs/add-a-method.md).
"""

from centerclip.model.clip import CLIP, CLIPConfig, load
from centerclip.model.clustering import kmedoids, spectral
from centerclip.model.methods import (ReductionMethod, SegmentResult, SegmentStage, TokenState, method_names,
                                      register_method)
from centerclip.model.retrieval import RetrievalModel
from centerclip.model.tokenizer import tokenize
from centerclip.model.video_encoder import ClusterStage, TokenReduction

__all__ = ["CLIP", "CLIPConfig", "ClusterStage", "ReductionMethod", "RetrievalModel", "SegmentResult", "SegmentStage",
           "TokenReduction", "TokenState", "kmedoids", "load", "method_names", "register_method", "spectral",
           "tokenize"]
