"""The authors' released checkpoints: reading them (centerclip.paper.released) and the table comparing their R@1."""

import json
import zipfile

import numpy as np
import pytest
import torch
from http_server import serve_directory
from released_zips import SETTINGS, hparams, tiny_clip, write_released_zip

from centerclip.model.clip import CLIP
from centerclip.model.clustering import kmedoids
from centerclip.data.digests import DownloadError
from centerclip.model.retrieval import RetrievalModel
from centerclip.paper.released import ReleasedCheckpointError, load, reduction_from_hparams, stage_starts
from centerclip.paper.released_table import download_checkpoint, read_checkpoint_list, render_released_table
from centerclip.model.video_encoder import ClusterStage, TokenReduction

# (block, segments, clusters) by hand from the rule: frames 12 for blocks 1-6, then S; 49 clusters everywhere
EXPECTED = {
    "eclip_msrvtt_62": [(6, 6, 49)], "eclip_msrvtt_63": [(6, 4, 49)], "eclip_msrvtt_80": [(7, 4, 49)],
    "eclip_msvd_22": [(6, 4, 49)], "eclip_new_abla_lsmdc_04": [(6, 6, 49)], "eclip_new_abla_lsmdc_09": [(6, 4, 49)],
    "eclip_new_abla_lsmdc_22": [(6, 6, 49)], "eclip_new_abla_lsmdc_23": [(6, 4, 49)],
}


@pytest.mark.parametrize("checkpoint", sorted(SETTINGS))
def test_every_released_setting_places_its_stage_where_the_original_does(checkpoint):
    hp = hparams(checkpoint)
    assert stage_starts(hp["max_frames"], hp["target_frames_blocks"], hp["cluster_num_blocks"]) == EXPECTED[checkpoint]


def test_two_stages_and_a_cluster_count_decrease():
    # Table 6's (B4 - 6, 49) then (B8 - 3, 49): frames 12,12,12,12 | 6,6,6,6 | 3,3,3,3
    assert stage_starts(12, [12] * 4 + [6] * 4 + [3] * 4, [49] * 12) == [(4, 6, 49), (8, 3, 49)]
    # same segments, fewer clusters from block 10 on: C[8] = 49 > C[9] = 25 starts a second stage
    assert stage_starts(12, [12] * 6 + [4] * 6, [49] * 9 + [25] * 3) == [(6, 4, 49), (9, 4, 25)]
    # C = 1 means no clustering in that block, whatever the frames do
    assert stage_starts(12, [12] * 6 + [4] * 6, [1] * 12) == []


def test_reductions_of_the_released_settings():
    p1 = reduction_from_hparams(hparams("eclip_msrvtt_62"), patch_size=32)
    assert p1 == TokenReduction("centerclip", (ClusterStage(6, 6, 49, "kmedoids", distance_p=1.0),))
    b7 = reduction_from_hparams(hparams("eclip_msrvtt_80"), patch_size=32)
    assert b7 == TokenReduction("centerclip", (ClusterStage(7, 4, 49),))
    # spectral KNN with spectral_knn_k < 5: k = 5 x frames per segment (+5 for ViT-B/16)
    assert reduction_from_hparams(hparams("eclip_new_abla_lsmdc_22"), 32).stages[0].knn == 10
    assert reduction_from_hparams(hparams("eclip_new_abla_lsmdc_23"), 32).stages[0].knn == 15
    assert reduction_from_hparams(hparams("eclip_new_abla_lsmdc_23"), 16).stages[0].knn == 20
    assert reduction_from_hparams(hparams("eclip_new_abla_lsmdc_23", spectral_knn_k=7), 32).stages[0].knn == 7
    assert reduction_from_hparams(hparams("eclip_new_abla_lsmdc_23", spectral_graph="HeatKernel"), 32).stages[0].knn is None
    assert reduction_from_hparams(hparams("eclip_msrvtt_80", pre_norm=1), 32).stages[0].l2_normalize
    assert reduction_from_hparams(hparams("eclip_msrvtt_80", cluster_inter=0), 32) == TokenReduction()
    assert reduction_from_hparams(hparams("eclip_msrvtt_80", cluster_algo="pooling"), 32).method == "pooling"
    assert reduction_from_hparams(hparams("eclip_msrvtt_80", aggregation="None"), 32).method == "centerclip"


# The original's spectral KNN graph: spectral_knn_k itself from 5 on, below 5 its automatic
# k = 5 x frames per segment (+5 for ViT-B/16). lsmdc_22 has 2 frames per segment, lsmdc_23 3.
@pytest.mark.parametrize("checkpoint,patch_size,automatic", [
    ("eclip_new_abla_lsmdc_22", 32, 10), ("eclip_new_abla_lsmdc_22", 16, 15),
    ("eclip_new_abla_lsmdc_23", 32, 15), ("eclip_new_abla_lsmdc_23", 16, 20),
])
def test_spectral_knn_k_from_5_on_is_taken_as_given(checkpoint, patch_size, automatic):
    knn = {k: reduction_from_hparams(hparams(checkpoint, spectral_knn_k=k), patch_size).stages[0].knn
           for k in (1, 4, 5, 6)}
    assert knn == {1: automatic, 4: automatic, 5: 5, 6: 6}


@pytest.mark.parametrize("key,value", [
    ("sim_header", "seqTransf"), ("linear_patch", "3d"), ("cluster_embedding", 1), ("time_embedding", 1),
    ("deep_cluster", 1), ("cluster_algo", "token_shift"), ("cluster_distance", "cosine"), ("aggregation", "mean"),
    ("slice_framepos", 0), ("spectral_sigma", 1.0), ("loose_type", False),
])
def test_a_setting_not_implemented_is_refused_naming_its_key(key, value):
    hp = hparams("eclip_new_abla_lsmdc_22" if key == "spectral_sigma" else "eclip_msrvtt_80", **{key: value})
    with pytest.raises(ReleasedCheckpointError, match=f"{key} = {value!r}" if key != "spectral_sigma" else key):
        reduction_from_hparams(hp, 32)


def _oracle_kmedoids(x: np.ndarray, k: int, p: float) -> list[int]:
    """KKZ + alternating k-medoids, written out for one row (float64, Minkowski p)."""
    d = (np.abs(x[:, None, :] - x[None, :, :]) ** p).sum(-1) ** (1 / p)
    med = [int(np.argmax(np.linalg.norm(x, axis=1)))]
    while len(med) < k:
        near = d[:, med].min(1)
        near[med] = -1
        med.append(int(np.argmax(near)))
    for _ in range(100):
        labels = np.argmin(d[:, med], axis=1)
        new = []
        for j in range(k):
            members = np.flatnonzero(labels == j)
            new.append(int(members[np.argmin(d[np.ix_(members, members)].sum(1))]))
        if new == med:
            break
        med = new
    return sorted(med)


def test_kmedoids_with_the_l1_distance_of_two_released_checkpoints():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 30, 16, generator=g) * torch.linspace(0.5, 3, 16)  # anisotropic: L1 and L2 differ
    got = kmedoids(x, 5, p=1.0).medoids
    for row in range(4):
        assert got[row].tolist() == _oracle_kmedoids(x[row].double().numpy(), 5, 1.0)
    assert not torch.equal(got, kmedoids(x, 5).medoids)  # and it is not the Euclidean answer


@pytest.fixture
def weights():
    return tiny_clip(seed=1).state_dict()


def test_load_reads_the_released_zip_as_the_authors_model(tmp_path, weights):
    path = write_released_zip(tmp_path, "eclip_msrvtt_62", weights, hparams("eclip_msrvtt_62"))
    model, info = load(path)
    for k, v in weights.items():  # every CLIP weight, bit for bit; position ids and optimizer dropped
        assert torch.equal(model.clip.state_dict()[k], v), k
    assert info["id"] == "eclip_msrvtt_62" and info["dataset"] == "msrvtt" and info["format"] == "msrvtt"
    assert (info["max_frames"], info["max_words"], info["epoch"], info["best_acc1"]) == (12, 32, 5, 44.1)
    assert info["setting"] == "k-medoids++ (B6 − 6, 49; L1 distance)"
    assert not list(tmp_path.glob("tmp*"))  # the extracted checkpoint is gone again

    # the same weights and reduction built directly encode a video identically
    expected = RetrievalModel(CLIP.from_state_dict(weights), TokenReduction(
        "centerclip", (ClusterStage(6, 6, 49, distance_p=1.0),))).eval()
    video, mask = torch.randn(2, 12, 3, 224, 224, generator=torch.Generator().manual_seed(0)), torch.ones(2, 12, dtype=torch.bool)
    euclidean = RetrievalModel(CLIP.from_state_dict(weights), TokenReduction(
        "centerclip", (ClusterStage(6, 6, 49),))).eval()
    with torch.no_grad():
        got = model.encode_video(video, mask)
        assert torch.equal(got, expected.encode_video(video, mask))
        # and the L1 distance is used: a model that clusters with L2 (even if both models above
        # silently did) encodes this video differently
        assert (got[:1] - euclidean.encode_video(video[:1], mask[:1])).abs().max() > 1e-3


def test_load_reads_an_extracted_folder_and_fp16_weights(tmp_path, weights):
    path = write_released_zip(tmp_path, "eclip_msvd_22", weights, hparams("eclip_msvd_22"), top_folder=False, half=True)
    folder = tmp_path / "unzipped"
    zipfile.ZipFile(path).extractall(folder)
    model, info = load(folder)
    assert info["format"] == "msvd" and info["setting"] == "k-medoids++ (B6 − 4, 49)"
    assert model.clip.visual.proj.dtype == torch.float32
    torch.testing.assert_close(model.clip.visual.proj, weights["visual.proj"].half().float(), rtol=0, atol=0)
    model2, _ = load(folder / "ckpt.best.pth.tar")  # the checkpoint file itself, hparams beside it
    assert torch.equal(model2.clip.visual.proj, model.clip.visual.proj)


def test_no_weight_of_clip_is_silently_missing_or_extra(tmp_path, weights):
    partial = {k: v for k, v in weights.items() if k != "ln_final.weight"}
    with pytest.raises(ReleasedCheckpointError, match="ln_final.weight"):
        load(write_released_zip(tmp_path / "a", "eclip_msrvtt_80", partial, hparams("eclip_msrvtt_80")))
    head = {"module.frame_position_embeddings.weight": torch.zeros(77, 64)}
    with pytest.raises(ReleasedCheckpointError, match="frame_position_embeddings.weight"):
        load(write_released_zip(tmp_path / "b", "eclip_msrvtt_80", weights, hparams("eclip_msrvtt_80"), extra=head))
    with pytest.raises(ReleasedCheckpointError, match="visual.cluster_embedding"):
        load(write_released_zip(tmp_path / "c", "eclip_msrvtt_80", weights, hparams("eclip_msrvtt_80"),
                                extra={"module.clip.visual.cluster_embedding": torch.zeros(49, 64)}))
    with pytest.raises(ReleasedCheckpointError, match="sim_header = 'seqTransf'"):
        load(write_released_zip(tmp_path / "d", "eclip_msrvtt_80", weights,
                                hparams("eclip_msrvtt_80", sim_header="seqTransf")))
    with pytest.raises(ReleasedCheckpointError, match="names ViT-B/16 but the weights have 32-pixel patches"):
        load(write_released_zip(tmp_path / "e", "eclip_msrvtt_80", weights,
                                hparams("eclip_msrvtt_80", pretrained_clip_name="ViT-B/16")))
    bare = tmp_path / "f" / "x.zip"
    bare.parent.mkdir()
    with zipfile.ZipFile(bare, "w") as z:
        z.writestr("x/log.txt", "")
    with pytest.raises(ReleasedCheckpointError, match="expected one ckpt.best.pth.tar, found 0"):
        load(bare)


def test_a_corrupt_download_is_deleted_and_a_good_one_recorded(tmp_path, weights):
    served = tmp_path / "served"
    good = write_released_zip(served, "eclip_msrvtt_80", weights, hparams("eclip_msrvtt_80"))
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # damage the deflated checkpoint
    (served / "broken.zip").write_bytes(bytes(data))
    digests = tmp_path / "digests.tsv"
    with serve_directory(served) as server:
        got = download_checkpoint(server.url("/eclip_msrvtt_80.zip"), tmp_path / "dl" / "a.zip", digest_manifest=digests)
        assert got.read_bytes() == good.read_bytes() and "eclip_msrvtt_80.zip" in digests.read_text()
        with pytest.raises(DownloadError, match="corrupt"):
            download_checkpoint(server.url("/broken.zip"), tmp_path / "dl" / "b.zip", digest_manifest=digests)
    assert not (tmp_path / "dl" / "b.zip").exists()


def test_the_table_puts_the_authors_r1_beside_ours_and_says_why_a_row_did_not_run(tmp_path):
    from pathlib import Path
    listed = read_checkpoint_list(Path(__file__).resolve().parent.parent / "config" / "released_checkpoints.yaml")
    assert len(listed["checkpoints"]) == 8
    assert listed["checkpoints"]["eclip_msrvtt_63"] == {"format": "msrvtt", "test": "MSR-VTT 1k-A (trained on 7k)",
                                                         "test_videos": 1000, "t2v_R1": 44.2, "v2t_R1": 43.2}
    metrics = {"eclip_msrvtt_63": {"t2v": {"R1": 43.7}, "v2t": {"R1": 43.9}, "efficiency": {"n_test_videos": 1000},
                                   "test_coverage": {"complete": True, "missing_test_videos": []},
                                   "checkpoint": {"setting": "k-medoids++ (B6 − 4, 49; L1 distance)",
                                                  "max_frames": 12, "max_words": 32}}}
    not_run = {c: "lsmdc not provided" for c in listed["checkpoints"] if "lsmdc" in c}
    table = render_released_table(listed, metrics, not_run, {}, "paper")
    line = next(ln for ln in table.markdown.splitlines() if ln.startswith("| eclip_msrvtt_63"))
    assert "| 44.2 | 43.7 | -0.5 | 43.2 | 43.9 | +0.7 | 1000 / 1000 |  |" in line and "12 / 32" in line
    metrics["eclip_msrvtt_63"]["efficiency"]["n_test_videos"] = 998
    fewer = render_released_table(listed, metrics, not_run, {}, "paper").markdown
    assert "test set of 998 videos, the original's has 1000: not comparable" in fewer
    assert table.markdown.count("not run: lsmdc not provided") == 4
    assert table.frame.set_index("checkpoint").loc["eclip_msrvtt_63", "t2v_R1_diff"] == -0.5
    assert "\\toprule" in table.latex and "eclip\\_msrvtt\\_63" in table.latex
    assert json.loads(table.frame.to_json())  # serialisable as written to CSV
