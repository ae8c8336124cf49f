"""Text embeddings: tokenised as the evaluation tokenises captions, and the ``embed-text`` output file.

``embed-text`` writes (h5py)::

    attrs        model_sha256, model_path, context_length
    /texts       vlen str [N]
    /embeddings  float32 [N, E], L2-normalised
"""

from __future__ import annotations

import os

import numpy as np
import torch

from centerclip.model.retrieval import RetrievalModel
from centerclip.model.tokenizer import tokenize
from centerclip.search.checkpoints import ModelIdentity
from centerclip.util import atomic


@torch.inference_mode()
def encode_texts(model: RetrievalModel, texts: list[str], context_length: int, device: torch.device,
                 batch_size: int = 256) -> np.ndarray:
    """L2-normalised text embeddings float32 [N, E]; each text tokenised to ``context_length`` tokens
    (longer texts truncated, end token kept: :func:`centerclip.model.tokenizer.tokenize`)."""
    out = [model.encode_text(tokenize(texts[i:i + batch_size], context_length=context_length).to(device)).float().cpu()
           for i in range(0, len(texts), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, model.clip.config.embed_dim), np.float32)


def write_text_embeddings(path: str | os.PathLike, texts: list[str], embeddings: np.ndarray,
                          model: ModelIdentity) -> None:
    """Write ``texts`` and their ``embeddings`` [N, E] to the HDF5 file ``path`` atomically."""
    import h5py

    with atomic.path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update({"model_sha256": model.model_sha256, "model_path": model.model_path,
                            "context_length": model.context_length})
            f.create_dataset("texts", data=np.array(texts, dtype=object), dtype=h5py.string_dtype())
            f.create_dataset("embeddings", data=np.asarray(embeddings, dtype=np.float32))
