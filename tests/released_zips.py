"""Generated stand-ins for the authors' released checkpoints, in the original's real layout.

``<id>.zip`` holds ``<id>/ckpt.best.pth.tar`` (``torch.save`` of ``{epoch, global_step, arch, state_dict,
best_acc1, optimizer, scaler}``; ``state_dict`` is a DDP-wrapped CLIP4Clip's: ``module.clip.<CLIP weight>``
plus the buffer ``module.clip.visual.position_ids``), ``<id>/hparams_train.json`` (the whole argparse
namespace of the original's ``params.py``, ``indent=4, sort_keys=True``), ``<id>/log.txt`` and a
tensorboard event file. The settings per id are those of the original's scripts (scripts/msrvtt.sh,
lsmdc.sh, msvd.sh at github.com/mzhaoshuai/CenterCLIP commit cfce759). The CLIP inside is a small
randomly initialised one of CLIP's layout (12 vision blocks, so every stage position is real).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import torch

from centerclip.model.clip import CLIP, CLIPConfig

#: The original's params.py defaults as its scripts set them for evaluation of a released run.
BASE_HPARAMS = {
    "adaptive_cls": 0, "aggregation": None, "batch_size": 64, "batch_size_val": 16, "beta1": 0.9, "beta2": 0.98,
    "cache_dir": "", "camoe_dsl": 0, "clip_grad_norm": 1.0, "cluser_embed_from_clip": 1, "cluster_algo": "kmediods++",
    "cluster_distance": "euclidean", "cluster_embedding": 0, "cluster_frame_embedding": 0, "cluster_inter": 1,
    "cluster_inter_dim": 256, "cluster_iter_limit": 100, "cluster_num_blocks": [49] * 12, "cluster_threshold": 1e-06,
    "coef_lr": 0.001, "cross_model": "cross-base", "cross_num_hidden_layers": 4, "data_dir": "/cache/dataset",
    "data_loaded": 0, "data_path": "/home/user/dataset1/msrvtt/MSRVTT_data.json", "datatype": "msrvtt",
    "debug": False, "deep_cluster": 0, "dist_backend": "nccl", "do_eval": 1, "do_lower_case": False,
    "do_pretrain": False, "do_train": 0, "dp": False, "epochs": 5, "eps": 1e-06, "eval_frame_order": 0,
    "expand_msrvtt_sentences": True, "feature_framerate": 3, "features_path": "/home/user/dataset1/msrvtt/resized_video",
    "freeze_clip": 0, "freeze_layer_num": 0, "gpu": None, "gradient_accumulation_steps": 1,
    "hard_negative_rate": 0.5, "init_method": "tcp://127.0.0.1:6061", "init_model": None, "linear_patch": "2d",
    "lmdb_dataset": None, "load_from_pretrained": 0, "local_rank": 0, "loose_type": True, "lr": 0.005,
    "lr_decay": 0.9, "margin": 0.1, "max_frames": 12, "max_words": 32, "minkowski_norm_p": 2.0, "multigpu": None,
    "n_display": 50, "n_gpu": 2, "n_pair": 1, "negative_weighting": 1, "num_thread_reader": 8, "optim": "AdamW",
    "output_dir": "/home/user/models/eclip/eclip_msrvtt_80", "pre_norm": 0, "pre_visual_pooling": 0,
    "precision": "amp", "pretrained_clip_name": "ViT-B/32", "pretrained_dir": "/home/user/models/pretrained",
    "remote": 0, "resume": None, "sampled_use_mil": False, "save_feature_path": None, "seed": 42,
    "sim_header": "meanP", "slice_framepos": 2, "spectral_graph": "HeatKernel", "spectral_knn_k": 1,
    "spectral_sigma": 2.0, "spectral_spg": 0, "svd_correct_sign": 1, "target_frames_blocks": [12] * 12,
    "task_type": "retrieval", "temperature_new": 1.0, "text_num_hidden_layers": 12, "time_embedding": 0,
    "train_csv": "/home/user/dataset1/msrvtt/MSRVTT_train.7k.csv", "train_frame_order": 0, "use_bn_sync": False,
    "use_mil": False, "val_csv": "/home/user/dataset1/msrvtt/MSRVTT_JSFUSION_test.csv", "video_dim": 1024,
    "visual_num_hidden_layers": 12, "warmup_proportion": 0.1, "wd": 0.2, "world_size": 2,
}

_B6_6, _B6_4 = [12] * 6 + [6] * 6, [12] * 6 + [4] * 6
#: Per released id: what its script sets beyond BASE_HPARAMS.
SETTINGS = {
    "eclip_msrvtt_62": {"minkowski_norm_p": 1.0, "target_frames_blocks": _B6_6},
    "eclip_msrvtt_63": {"minkowski_norm_p": 1.0, "target_frames_blocks": _B6_4},
    "eclip_msrvtt_80": {"target_frames_blocks": [12] * 7 + [4] * 5},
    "eclip_msvd_22": {"datatype": "msvd", "target_frames_blocks": _B6_4},
    "eclip_new_abla_lsmdc_04": {"datatype": "lsmdc", "target_frames_blocks": _B6_6},
    "eclip_new_abla_lsmdc_09": {"datatype": "lsmdc", "target_frames_blocks": _B6_4},
    "eclip_new_abla_lsmdc_22": {"datatype": "lsmdc", "cluster_algo": "spectral", "spectral_graph": "KNN",
                                "target_frames_blocks": _B6_6},
    "eclip_new_abla_lsmdc_23": {"datatype": "lsmdc", "cluster_algo": "spectral", "spectral_graph": "KNN",
                                "target_frames_blocks": _B6_4},
}

#: Small CLIP of CLIP's layout: 224-pixel input with 32-pixel patches (7×7 grid, 49 patch tokens as
#: ViT-B/32), 12 vision blocks, full vocabulary and 77-token context.
TINY = CLIPConfig(embed_dim=32, image_resolution=224, vision_layers=12, vision_width=64, vision_patch_size=32,
                  context_length=77, vocab_size=49408, transformer_width=64, transformer_heads=1,
                  transformer_layers=2)


def hparams(checkpoint: str, **overrides) -> dict:
    return {**BASE_HPARAMS, "output_dir": f"/home/user/models/eclip/{checkpoint}", **SETTINGS.get(checkpoint, {}),
            **overrides}


def tiny_clip(seed: int = 0) -> CLIP:
    torch.manual_seed(seed)
    return CLIP(TINY)


def checkpoint_dict(clip_state: dict[str, torch.Tensor], *, half: bool = False, extra: dict | None = None) -> dict:
    """What the original's ``save_checkpoint`` writes for a DDP model trained with AdamW and amp."""
    sd = {f"module.clip.{k}": (v.half() if half and v.is_floating_point() else v.clone()) for k, v in clip_state.items()}
    grid = TINY.image_resolution // TINY.vision_patch_size
    sd["module.clip.visual.position_ids"] = torch.arange(grid * grid + 1).unsqueeze(0)
    sd.update(extra or {})
    params = [v for k, v in clip_state.items() if v.is_floating_point()]
    optimizer = {"state": {i: {"step": torch.tensor(500.0), "exp_avg": torch.full_like(p, 1e-3),
                               "exp_avg_sq": torch.full_like(p, 1e-6)} for i, p in enumerate(params)},
                 "param_groups": [{"lr": 5e-6, "betas": (0.9, 0.98), "eps": 1e-6, "weight_decay": 0.2,
                                   "amsgrad": False, "params": list(range(len(params)))}]}
    scaler = {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
              "_growth_tracker": 12}
    return {"epoch": 5, "global_step": 550, "arch": "CLIp4Clip", "state_dict": sd, "best_acc1": 44.1,
            "optimizer": optimizer, "scaler": scaler}


def write_released_zip(out_dir: str | Path, checkpoint: str, clip_state: dict[str, torch.Tensor], hp: dict, *,
                       top_folder: bool = True, half: bool = False, extra: dict | None = None) -> Path:
    """``out_dir/<checkpoint>.zip`` in the released layout (members under ``<checkpoint>/`` by default)."""
    out = Path(out_dir) / f"{checkpoint}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(checkpoint_dict(clip_state, half=half, extra=extra), buf)
    prefix = f"{checkpoint}/" if top_folder else ""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{prefix}ckpt.best.pth.tar", buf.getvalue())
        z.writestr(f"{prefix}hparams_train.json", json.dumps(hp, indent=4, sort_keys=True))
        z.writestr(f"{prefix}log.txt", "2022-03-12 10:00:00 Epoch 5/5 ... R@1: 44.1\n")
        z.writestr(f"{prefix}tensorboard/events.out.tfevents.1647000000.host.12345.0", b"\x18\x00\x00\x00")
    return out
