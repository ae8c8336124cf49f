"""centerclip.model.tome against a hand-written reference: plain Python loops over rows and tokens.

The reference (``ref_*``) shares no code with tome.py: it splits positions into A (even) and B (odd) itself,
scores with explicit dot products, and builds every merged token by looping over its members.
"""

from __future__ import annotations

import math

import pytest
import torch

from centerclip.model.clip import ResidualAttentionBlock
from centerclip.model.tome import (
    bipartite_soft_matching,
    merge_source,
    merge_weighted,
    proportional_attention,
    tome_block,
    tome_r_schedule,
)

# ---------------------------------------------------------------- reference


def ref_match(metric_row: list[list[float]], r: int, protect_cls: bool = True):
    """One row: (output order as original positions, {merged A position: B position it joins})."""
    length = len(metric_row)
    a_pos = [p for p in range(length) if p % 2 == 0]
    b_pos = [p for p in range(length) if p % 2 == 1]
    r = max(0, min(r, len(a_pos) - (1 if protect_cls else 0), len(b_pos)))
    if r == 0:
        return list(range(length)), {}

    def unit(v):
        n = math.sqrt(sum(t * t for t in v))
        return [t / n for t in v]

    best = {}  # A position -> (score, B position)
    for a in a_pos:
        if protect_cls and a == 0:
            best[a] = (-math.inf, b_pos[0])
            continue
        ua, top = unit(metric_row[a]), None
        for b in b_pos:  # strict '>' keeps the lowest-index B among equal maxima
            s = sum(x * y for x, y in zip(ua, unit(metric_row[b])))
            if top is None or s > top[0]:
                top = (s, b)
        best[a] = top
    ranked = sorted(a_pos, key=lambda a: (-best[a][0], a))  # higher score first, ties: lower position
    merged = {a: best[a][1] for a in ranked[:r]}
    kept = [a for a in a_pos if a not in merged]
    return kept + b_pos, merged


def ref_merge_row(order, merged, x_row, size_row):
    """Size-weighted averages and summed sizes of one row, token by token."""
    out_x, out_s = [], []
    for p in order:
        members = [p] + [a for a, b in merged.items() if b == p]
        s = sum(size_row[m] for m in members)
        out_x.append([sum(x_row[m][c] * size_row[m] for m in members) / s for c in range(len(x_row[p]))])
        out_s.append(s)
    return out_x, out_s


def ref_attention(q, k, v, size):
    """q, k, v [R, H, L, d] nested lists, size [R][L]: softmax(q.k / sqrt(d) + log size_key) v, per head."""
    out = []
    for r_, (qr, kr, vr) in enumerate(zip(q, k, v)):
        heads = []
        for qh, kh, vh in zip(qr, kr, vr):
            d = len(qh[0])
            rows = []
            for qi in qh:
                logits = [sum(a * b for a, b in zip(qi, kj)) / math.sqrt(d) + math.log(size[r_][j])
                          for j, kj in enumerate(kh)]
                m = max(logits)
                w = [math.exp(t - m) for t in logits]
                z = sum(w)
                rows.append([sum(w[j] * vh[j][c] for j in range(len(kh))) / z for c in range(d)])
            heads.append(rows)
        out.append(heads)
    return out


def ref_block(block: ResidualAttentionBlock, x: torch.Tensor, size: list[list[float]], r: int):
    """The ToMe block token by token in float64: LN, per-head attention with log-size bias, merge, LN, MLP."""
    sd = {k: t.detach().double() for k, t in block.state_dict().items()}
    heads, width = block.attn.heads, x.shape[-1]
    d = width // heads

    def ln(v, name):
        mu = sum(v.tolist()) / width
        var = sum((t - mu) ** 2 for t in v.tolist()) / width
        return (v - mu) / math.sqrt(var + block.ln_1.eps) * sd[f"{name}.weight"] + sd[f"{name}.bias"]

    xs, sizes = [], []
    for i, row in enumerate(x.double()):
        toks = [row[t] for t in range(row.shape[0])]
        qkv = [sd["attn.in_proj_weight"] @ ln(t, "ln_1") + sd["attn.in_proj_bias"] for t in toks]
        q = [[[float(z) for z in t[h * d:(h + 1) * d]] for t in qkv] for h in range(heads)]
        k = [[[float(z) for z in t[width + h * d:width + (h + 1) * d]] for t in qkv] for h in range(heads)]
        v = [[[float(z) for z in t[2 * width + h * d:2 * width + (h + 1) * d]] for t in qkv] for h in range(heads)]
        att = ref_attention([q], [k], [v], [size[i]])[0]
        toks = [toks[t] + sd["attn.out_proj.weight"] @ torch.tensor([c for h in range(heads) for c in att[h][t]],
                                                                    dtype=torch.float64) + sd["attn.out_proj.bias"]
                for t in range(len(toks))]
        metric = [[sum(k[h][t][c] for h in range(heads)) / heads for c in range(d)] for t in range(len(toks))]
        order, merged = ref_match(metric, r)
        mx, ms = ref_merge_row(order, merged, [t.tolist() for t in toks], size[i])
        out = []
        for t in mx:
            t = torch.tensor(t, dtype=torch.float64)
            hdn = sd["mlp.c_fc.weight"] @ ln(t, "ln_2") + sd["mlp.c_fc.bias"]
            hdn = hdn * torch.sigmoid(1.702 * hdn)  # QuickGELU
            out.append((t + sd["mlp.c_proj.weight"] @ hdn + sd["mlp.c_proj.bias"]).tolist())
        xs.append(out)
        sizes.append(ms)
    return torch.tensor(xs, dtype=torch.float64), torch.tensor(sizes, dtype=torch.float64)


def realised(merge, rows: int, length: int):
    """tome's Merge as (output order as original positions, {A position: B position}) per row."""
    out = []
    for i in range(rows):
        if merge.r == 0:
            out.append((list(range(length)), {}))
            continue
        kept = [2 * int(a) for a in merge.kept[i]]
        merged = {2 * int(a): 2 * int(b) + 1 for a, b in zip(merge.src[i], merge.dst[i])}
        out.append((kept + list(range(1, length, 2)), merged))
    return out


# ---------------------------------------------------------------- tests

R, L, C = 3, 9, 4


@pytest.mark.parametrize("r", range(0, 7))
@pytest.mark.parametrize("protect_cls", [True, False])
def test_matching_sets_and_order_match_reference(r, protect_cls):
    torch.manual_seed(r)
    metric = torch.randn(R, L, C, dtype=torch.float64)
    merge = bipartite_soft_matching(metric, r, protect_cls=protect_cls)
    got = realised(merge, R, L)
    for i in range(R):
        assert got[i] == ref_match(metric[i].tolist(), r, protect_cls)
        if protect_cls:
            assert 0 not in got[i][1] and got[i][0][0] == 0  # CLS never merges and stays first
    assert merge.r == min(r, (L + 1) // 2 - int(protect_cls), L // 2)


@pytest.mark.parametrize("r", range(0, 5))
def test_merge_weighted_and_source_match_reference(r):
    torch.manual_seed(100 + r)
    metric = torch.randn(R, L, C, dtype=torch.float64)
    x = torch.randn(R, L, 5, dtype=torch.float64)
    size = torch.randint(1, 6, (R, L, 1)).double()  # non-uniform: a plain mean would fail
    source = (torch.rand(R, L, 12) < 0.3).double()
    merge = bipartite_soft_matching(metric, r)
    mx, ms = merge_weighted(merge, x, size)
    msrc, mbool = merge_source(merge, source), merge_source(merge, source.bool())
    assert mx.shape == (R, L - r, 5) and ms.shape == (R, L - r, 1) and mbool.dtype == torch.bool
    for i, (order, merged) in enumerate(realised(merge, R, L)):
        ref_x, ref_s = ref_merge_row(order, merged, x[i].tolist(), size[i, :, 0].tolist())
        torch.testing.assert_close(mx[i], torch.tensor(ref_x, dtype=torch.float64), rtol=0, atol=1e-12)
        assert ms[i, :, 0].tolist() == ref_s
        for j, p in enumerate(order):
            members = [p] + [a for a, b in merged.items() if b == p]
            union = [any(source[i, m, n] > 0 for m in members) for n in range(12)]
            summed = [sum(float(source[i, m, n]) for m in members) for n in range(12)]
            assert mbool[i, j].tolist() == union and msrc[i, j].tolist() == summed


def test_identical_pair_merges_a_into_b_with_size_weights():
    """A planted pair (B position 3, A position 4) must merge A into B, weighted by sizes 3 : 1."""
    e = torch.eye(C)
    metric = torch.stack([e[0], e[1], e[2], e[3], e[3], -e[0], -e[1], -e[2], -e[0] + e[1]]).unsqueeze(0)
    merge = bipartite_soft_matching(metric, 1)
    assert merge.src.tolist() == [[2]] and merge.dst.tolist() == [[1]]  # A index 2 = pos 4 -> B index 1 = pos 3
    x = torch.arange(L, dtype=torch.float64).view(1, L, 1)
    size = torch.ones(1, L, 1, dtype=torch.float64)
    size[0, 3] = 3.0
    mx, ms = merge_weighted(merge, x, size)
    # kept A (0, 2, 6, 8) then B (1, 3+4, 5, 7); a swapped side would drop position 3 instead of 4
    assert mx[0, :, 0].tolist() == [0, 2, 6, 8, 1, (3 * 3 + 4) / 4, 5, 7]
    assert ms[0, :, 0].tolist() == [1, 1, 1, 1, 1, 4, 1, 1]


def test_ties_break_to_lower_indices():
    metric = torch.zeros(2, L, C)
    metric[..., 0] = 1.0  # every cosine similarity is exactly 1
    merge = bipartite_soft_matching(metric, 2)
    assert merge.src.tolist() == [[1, 2]] * 2 and merge.dst.tolist() == [[0, 0]] * 2
    assert merge.kept.tolist() == [[0, 3, 4]] * 2


def test_proportional_attention_matches_reference():
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 2, 2, 6, 4, dtype=torch.float64).unbind(0)
    size = torch.randint(1, 8, (2, 6, 1)).double()
    got = proportional_attention(q, k, v, size)
    want = ref_attention(q.tolist(), k.tolist(), v.tolist(), size[..., 0].tolist())
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-12)
    plain = ref_attention(q.tolist(), k.tolist(), v.tolist(), [[1.0] * 6] * 2)
    torch.testing.assert_close(proportional_attention(q, k, v, None), torch.tensor(plain, dtype=torch.float64))
    assert not torch.allclose(got, torch.tensor(plain, dtype=torch.float64))  # the bias matters here


@pytest.fixture
def block():
    torch.manual_seed(0)
    blk = ResidualAttentionBlock(width=8, heads=2).eval()
    with torch.no_grad():  # non-trivial biases and LN affine so the reference exercises them
        for p in blk.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return blk


def test_tome_block_r0_is_the_block(block):
    x = torch.randn(2, L, 8)
    with torch.no_grad():
        out, size, source = tome_block(block, x, None, 0)
        torch.testing.assert_close(out, block(x), rtol=0, atol=1e-6)
    assert size.shape == (2, L, 1) and bool((size == 1).all()) and source is None


@pytest.mark.parametrize("r", [0, 2, 4])
def test_tome_block_matches_reference(block, r):
    torch.manual_seed(10 + r)
    x = torch.randn(2, L, 8)
    size = torch.randint(1, 5, (2, L, 1)).float()
    with torch.no_grad():
        out, new_size, _ = tome_block(block, x, size, r)
    ref_x, ref_s = ref_block(block, x, size[..., 0].tolist(), r)
    assert out.shape == (2, L - r, 8)
    torch.testing.assert_close(out.double(), ref_x, rtol=0, atol=1e-5)
    assert new_size[..., 0].tolist() == ref_s.tolist()


def test_tome_blocks_chain_keeps_sizes_sources_and_cls(block):
    torch.manual_seed(3)
    x = torch.randn(2, 13, 8)
    source = torch.eye(13).expand(2, 13, 13).clone()
    size, length = None, 13
    with torch.no_grad():
        cls = block(x)[:, 0]
        for r in tome_r_schedule(13, 3, 4):
            x, size, source = tome_block(block, x, size, 3, source)
            length -= r
            assert x.shape == (2, length, 8) and source.shape == (2, length, 13)
            torch.testing.assert_close(size[..., 0], source.sum(-1))  # each patch counted once
            assert bool((size.sum(1) == 13).all()) and bool((source[:, 0, 0] == 1).all())
            assert bool((source[:, 0, 1:] == 0).all())  # the CLS row never absorbs a patch
    assert length == 13 - sum(tome_r_schedule(13, 3, 4))
    assert not torch.equal(cls, x[:, 0])


def test_r_schedule():
    assert tome_r_schedule(197, 8, 12) == [8] * 12
    assert tome_r_schedule(9, 4, 4) == [4, 2, 1, 0]  # 9 -> 5 -> 3 -> 2: A minus the CLS each time
    assert tome_r_schedule(9, 4, 4, protect_cls=False) == [4, 2, 1, 1]  # 9 -> 5 -> 3 -> 2 -> 1
    assert tome_r_schedule(50, 0, 3) == [0, 0, 0] and tome_r_schedule(5, -2, 2) == [0, 0]
    assert tome_r_schedule(197, 100, 2) == [98, 49]
