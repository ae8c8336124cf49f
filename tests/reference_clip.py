"""Independent CLIP ViT written the way OpenAI's model.py lays it out, for parity tests only.

Deliberately different from ``centerclip.model.clip``: sequence-first [L, N, D] activations, attention and
LayerNorm spelled out with elementary tensor ops, parameters held in plain containers. Only the parameter
names are shared, since both must read the same checkpoints. Traceable with ``torch.jit.trace``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


class Norm(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))

    def forward(self, x: Tensor) -> Tensor:
        return layer_norm(x, self.weight, self.bias)


class Dense(nn.Module):
    """Weight [out, in] and bias [out], applied as x @ W^T + b."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d_out, d_in) * d_in**-0.5)
        self.bias = nn.Parameter(torch.randn(d_out) * 0.02)

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(x, self.weight.t()) + self.bias


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * width, width) * width**-0.5)
        self.in_proj_bias = nn.Parameter(torch.randn(3 * width) * 0.02)
        self.out_proj = Dense(width, width)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        # x: [L, N, D]. Heads are folded into the batch axis as in torch's MHA: [L, N*H, hd].
        length, batch, width = x.shape
        head_dim = width // self.heads
        w_q, w_k, w_v = self.in_proj_weight.split(width, dim=0)
        b_q, b_k, b_v = self.in_proj_bias.split(width, dim=0)
        q = torch.matmul(x, w_q.t()) + b_q
        k = torch.matmul(x, w_k.t()) + b_k
        v = torch.matmul(x, w_v.t()) + b_v

        def fold(t: Tensor) -> Tensor:
            return t.reshape(length, batch * self.heads, head_dim).transpose(0, 1)  # [N*H, L, hd]

        q, k, v = fold(q), fold(k), fold(v)
        scores = torch.bmm(q / head_dim**0.5, k.transpose(1, 2))  # [N*H, L, L]
        if mask is not None:
            scores = scores + mask
        weights = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.bmm(weights, v).transpose(0, 1).reshape(length, batch, width)
        return self.out_proj(out)


class Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = Dense(width, 4 * width)
        self.c_proj = Dense(4 * width, width)

    def forward(self, x: Tensor) -> Tensor:
        h = self.c_fc(x)
        return self.c_proj(h * torch.sigmoid(1.702 * h))


class Block(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.attn = SelfAttention(width, heads)
        self.ln_1 = Norm(width)
        self.mlp = Mlp(width)
        self.ln_2 = Norm(width)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Stack(nn.Module):
    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        for block in self.resblocks:
            x = block(x, mask)
        return x


class Visual(nn.Module):
    def __init__(self, resolution: int, patch: int, width: int, layers: int, out_dim: int) -> None:
        super().__init__()
        self.patch = patch
        grid = resolution // patch
        self.conv1 = nn.Module()
        self.conv1.weight = nn.Parameter(torch.randn(width, 3, patch, patch) * (3 * patch * patch) ** -0.5)
        self.class_embedding = nn.Parameter(torch.randn(width) * width**-0.5)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, width) * width**-0.5)
        self.ln_pre = Norm(width)
        self.transformer = Stack(width, layers, width // 64)
        self.ln_post = Norm(width)
        self.proj = nn.Parameter(torch.randn(width, out_dim) * width**-0.5)

    def forward(self, images: Tensor) -> Tensor:
        n, _, h, w = images.shape
        p = self.patch
        # Patchify by reshaping instead of a strided convolution: [N, grid², 3*p*p] in (c, y, x) order.
        patches = images.reshape(n, 3, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(n, (h // p) * (w // p), 3 * p * p)
        tokens = torch.matmul(patches, self.conv1.weight.reshape(self.conv1.weight.shape[0], -1).t())
        cls = self.class_embedding.reshape(1, 1, -1).expand(n, 1, tokens.shape[-1])
        x = torch.cat([cls, tokens], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)  # LND
        x = self.transformer(x, None).permute(1, 0, 2)
        return torch.matmul(self.ln_post(x[:, 0, :]), self.proj)


class ReferenceCLIP(nn.Module):
    """OpenAI-layout CLIP ViT; ``forward(images, tokens)`` returns (image features, text features)."""

    def __init__(
        self,
        embed_dim: int,
        image_resolution: int,
        vision_layers: int,
        vision_width: int,
        vision_patch_size: int,
        context_length: int,
        vocab_size: int,
        transformer_width: int,
        transformer_heads: int,
        transformer_layers: int,
    ) -> None:
        super().__init__()
        self.visual = Visual(image_resolution, vision_patch_size, vision_width, vision_layers, embed_dim)
        self.transformer = Stack(transformer_width, transformer_layers, transformer_heads)
        self.token_embedding = nn.Module()
        self.token_embedding.weight = nn.Parameter(torch.randn(vocab_size, transformer_width) * 0.02)
        self.positional_embedding = nn.Parameter(torch.randn(context_length, transformer_width) * 0.01)
        self.ln_final = Norm(transformer_width)
        self.text_projection = nn.Parameter(torch.randn(transformer_width, embed_dim) * transformer_width**-0.5)
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))

    def encode_image(self, images: Tensor) -> Tensor:
        return self.visual(images)

    def encode_text(self, tokens: Tensor) -> Tensor:
        length = tokens.shape[1]
        x = self.token_embedding.weight[tokens] + self.positional_embedding[:length]
        mask = torch.triu(torch.full((length, length), float("-inf")), diagonal=1)
        x = self.transformer(x.permute(1, 0, 2), mask).permute(1, 0, 2)
        x = self.ln_final(x)
        return torch.matmul(x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)], self.text_projection)

    def forward(self, images: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode_image(images), self.encode_text(tokens)
