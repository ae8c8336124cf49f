"""Video compression (3 fps, shorter side 224, H.264) and probing without ffprobe.

All inputs are generated with ffmpeg's lavfi sources into pytest tmp dirs (tests/videos.py).
Run against another ffmpeg with ``CENTERCLIP_FFMPEG=/path/to/ffmpeg pytest tests/test_compress.py``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from centerclip.data import BadVideo as BadVideoReexport
from centerclip.data import compress as compress_mod
from centerclip.data import compress_video as compress_video_reexport
from centerclip.data.compress import BadVideo, compress_many, compress_video
from centerclip.data.ffmpeg_bin import ffmpeg_exe
from centerclip.data.probe import ffmpeg_banner, parse_rotation, probe_header, probe_video

try:  # tests/ may or may not be a package
    from .videos import make_audio_only, make_vfr_video, make_video, truncate, write_text
except ImportError:
    from videos import make_audio_only, make_vfr_video, make_video, truncate, write_text


def _decord_frames(path) -> tuple[int, tuple[int, int]]:
    import decord

    vr = decord.VideoReader(str(path), num_threads=1)
    return len(vr), vr[0].shape[:2]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """Source clips shared by the tests of this module (generated once, ~2 s)."""
    d = tmp_path_factory.mktemp("src")
    land = make_video(d / "land.mp4", 320, 240, fps=25, seconds=5)
    tail_moov = make_video(d / "tail_moov.mp4", 320, 240, 25, 2, faststart=False)  # index at the end
    return {
        "land": land,
        "portrait": make_video(d / "portrait.mp4", 240, 320, fps=30, seconds=2),
        "square": make_video(d / "square.mp4", 256, 256, fps=25, seconds=1),
        "odd": make_video(d / "odd.mp4", 333, 201, fps=25, seconds=2),
        "rotated": make_video(d / "rotated.mp4", 320, 240, fps=30, seconds=2, rotate=90),
        "one_second": make_video(d / "one.mp4", 320, 240, fps=25, seconds=1),
        "vfr": make_vfr_video(d / "vfr.mp4", seconds=4),
        "avi": make_video(d / "mpeg4.avi", 320, 240, fps=25, seconds=2, codec="mpeg4"),
        "half": truncate(land, d / "half.mp4", 0.5),
        "tenth": truncate(land, d / "tenth.mp4", 0.1),
        "half_no_index": truncate(tail_moov, d / "hni.mp4", 0.5),
        "zero": truncate(land, d / "zero.mp4", 0.0),
        "text": write_text(d / "text.mp4"),
        "audio_m4a": make_audio_only(d / "audio.m4a"),
        "audio_mp4": make_audio_only(d / "audio_only.mp4"),
    }


# ---------------------------------------------------------------- good inputs


def test_landscape_320x240_25fps_5s(src, tmp_path):
    dst = tmp_path / "out" / "deep" / "land.mp4"  # parent dirs are created
    res = compress_video(src["land"], dst)
    assert (res["width"], res["height"]) == (298, 224)
    assert abs(res["width"] / res["height"] - 320 / 240) / (320 / 240) < 0.01
    assert res["frames"] == 15  # fps filter: 5 s x 3 fps (the original `-r 3` gave 17)
    assert res["fps"] == 3 and res["codec"] in ("libx264", "mpeg4")
    n, (h, w) = _decord_frames(dst)
    assert (n, w, h) == (15, 298, 224)
    out = probe_video(dst)
    assert out["rotation"] == 0 and abs(out["fps"] - 3) < 0.01
    assert _leftovers(dst.parent) == []


def test_portrait_keeps_orientation(src, tmp_path):
    res = compress_video(src["portrait"], tmp_path / "p.mp4")
    assert res["width"] == 224 and res["height"] > 224  # not 224x168 like the original
    assert res["height"] == 298 and res["frames"] == 6  # 2 s x 3 fps, as the 5 s landscape gives 15


def test_square_and_other_short_side(src, tmp_path):
    res = compress_video(src["square"], tmp_path / "s.mp4")
    assert (res["width"], res["height"], res["frames"]) == (224, 224, 3)
    res = compress_video(src["land"], tmp_path / "small.mp4", fps=2, short_side=112)
    assert (res["width"], res["height"]) == (150, 112) and res["frames"] == 10  # 5 s x 2 fps


def test_odd_input_size(src, tmp_path):
    assert probe_video(src["odd"])[("width")] == 333
    res = compress_video(src["odd"], tmp_path / "o.mp4")
    # 224 x 333 / 201 = 371.1, to the nearest even width (4:2:0 video needs even sides): 372, as 320 x 240 -> 298
    assert (res["height"], res["width"]) == (224, 372)


def test_rotation_metadata_is_honoured(src, tmp_path):
    info = probe_video(src["rotated"])
    assert info["rotation"] in (90, 270)
    assert (info["width"], info["height"]) == (240, 320)  # displayed size, coded is 320x240
    assert probe_header(src["rotated"])["width"] == 240
    dst = tmp_path / "r.mp4"
    res = compress_video(src["rotated"], dst)
    assert (res["width"], res["height"]) == (224, 298)  # comes out portrait, as displayed
    out = probe_video(dst)
    assert out["rotation"] == 0 and (out["width"], out["height"]) == (224, 298)
    assert _decord_frames(dst)[1] == (298, 224)


def test_variable_frame_rate(src, tmp_path):
    info = probe_video(src["vfr"])
    assert 3.8 < info["duration"] <= 4.0 and 15 < info["fps"] < 25  # 30 and 10 fps alternating
    res = compress_video(src["vfr"], tmp_path / "v.mp4")
    assert abs(res["frames"] - 3 * info["duration"]) <= 1


def test_one_second_clip_gives_3_frames(src, tmp_path):
    assert compress_video(src["one_second"], tmp_path / "one.mp4")["frames"] == 3


def test_mpeg4_avi_input(src, tmp_path):
    res = compress_video(src["avi"], tmp_path / "a.mp4")
    assert (res["width"], res["height"], res["frames"]) == (298, 224, 6)


def test_unicode_and_space_names(src, tmp_path):
    s = tmp_path / "entrée ü" / "vidéo test ü.mp4"
    s.parent.mkdir()
    s.write_bytes(Path(src["one_second"]).read_bytes())
    dst = tmp_path / "sortie é" / "vidéo test ü.mp4"
    res = compress_video(s, dst)
    assert res["frames"] == 3 and dst.is_file()
    assert probe_video(s)["frames"] == 25


def test_dash_and_colon_in_names(src, tmp_path):
    s = tmp_path / "-x:y.mp4"
    s.write_bytes(Path(src["one_second"]).read_bytes())
    res = compress_video(s, tmp_path / "-out:1.mp4")
    assert res["frames"] == 3 and (tmp_path / "-out:1.mp4").is_file()


def test_input_decord_cannot_read_uses_header(tmp_path):
    """AV1 (decord's bundled FFmpeg has no AV1 decoder): probed from the ffmpeg header, still compressed."""
    enc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    name = next((e for e in ("libsvtav1", "librav1e", "libaom-av1") if f" {e} " in enc), None)
    if name is None:
        pytest.skip("this ffmpeg has no AV1 encoder")
    s = make_video(tmp_path / "av1.mp4", 320, 240, 25, 1, codec=name, pix_fmt="yuv420p")
    info = probe_video(s, header_fallback=True)
    if info["source"] == "decord":
        pytest.skip("this decord reads AV1: nothing to fall back from")
    assert "decord_error" in info and info["duration"] == pytest.approx(1.0, abs=0.05)
    res = compress_video(s, tmp_path / "o.mp4")
    assert (res["width"], res["height"], res["frames"]) == (298, 224, 3)


def test_mpeg4_fallback_when_no_libx264(src, tmp_path, monkeypatch):
    monkeypatch.setattr(compress_mod, "video_encoder", lambda exe: "mpeg4")
    res = compress_video(src["one_second"], tmp_path / "m.mp4")
    assert res["codec"] == "mpeg4" and res["frames"] == 3 and res["height"] == 224


def test_command_line(tmp_path):
    cmd = compress_mod._build_command(Path("/in.mp4"), Path("/o.tmp.mp4"), 3, 224, "libx264", "FF")
    line = " ".join(cmd)
    assert cmd[0] == "FF" and "-an" in cmd and "-nostdin" in cmd and "-y" in cmd
    assert cmd[cmd.index("-loglevel") + 1] == "error" and cmd[cmd.index("-pix_fmt") + 1] == "yuv420p"
    assert cmd[cmd.index("-vcodec") + 1] == "libx264" and "-r" not in cmd
    assert line.index("fps=fps=3") < line.index("scale=") < line.index("setsar")
    assert r"scale=if(gt(iw\,ih)\,-2\,224):if(gt(iw\,ih)\,224\,-2)" in line


# ---------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "key, words",
    [
        ("half", "truncated"),  # decision: a file cut at 50 % is rejected (8 of 15 frames decode)
        ("tenth", "truncated"),
        ("half_no_index", "moov atom not found"),
        ("zero", "empty file"),
        ("text", "not a video"),
        ("audio_m4a", "no video stream"),
        ("audio_mp4", "no video stream"),
    ],
)
def test_bad_inputs_raise_with_reason(src, tmp_path, key, words):
    dst = tmp_path / "out" / "x.mp4"
    with pytest.raises(BadVideo) as ei:
        compress_video(src[key], dst)
    msg = str(ei.value)
    assert str(src[key]) in msg and words in msg and ei.value.reason in msg
    assert not dst.exists()
    assert _leftovers(dst.parent) == [] if dst.parent.exists() else True


def test_missing_file(tmp_path):
    with pytest.raises(BadVideo, match="file not found"):
        compress_video(tmp_path / "nope.mp4", tmp_path / "o.mp4")
    with pytest.raises(BadVideo, match="not a regular file"):
        compress_video(tmp_path, tmp_path / "o.mp4")


def test_probe_rejects_non_videos(src):
    for key, words in [("text", "not a video"), ("audio_m4a", "no video stream"), ("half", "truncated")]:
        with pytest.raises(BadVideo, match=words):
            probe_video(src[key])
    info = probe_video(src["land"])
    assert (info["width"], info["height"], info["frames"], info["rotation"]) == (320, 240, 125, 0)
    assert info["fps"] == pytest.approx(25) and info["duration"] == pytest.approx(5.0)


def test_failure_keeps_existing_dst_and_leaves_nothing(src, tmp_path, monkeypatch):
    dst = tmp_path / "keep.mp4"
    dst.write_bytes(b"old content")
    with pytest.raises(BadVideo):
        compress_video(src["half"], dst)
    assert dst.read_bytes() == b"old content" and _leftovers(tmp_path) == []
    # An encoder output that fails validation (wrong size) is removed, not moved into place.
    monkeypatch.setattr(compress_mod, "_scale_exprs", lambda s: ("200", "100"))
    with pytest.raises(BadVideo, match="shorter side is not 224"):
        compress_video(src["one_second"], tmp_path / "wrong.mp4")
    assert not (tmp_path / "wrong.mp4").exists() and _leftovers(tmp_path) == []


def test_bad_arguments(src, tmp_path):
    with pytest.raises(ValueError):
        compress_video(src["land"], tmp_path / "o.mp4", short_side=223)
    with pytest.raises(ValueError):
        compress_video(src["land"], tmp_path / "o.mp4", fps=0)


def test_bad_video_message_forms():
    e = BadVideo("/a/b.mp4", "no video stream")
    assert str(e) == "/a/b.mp4: no video stream" and e.path == "/a/b.mp4" and e.reason == "no video stream"
    e = BadVideo("/a/b.mp4: no frames")
    assert str(e) == "/a/b.mp4: no frames" and e.path is None
    assert BadVideoReexport is BadVideo and compress_video_reexport is compress_video


def test_parse_rotation_banners():
    def banner(extra: str) -> str:
        return (
            "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':\n"
            "  Stream #0:0[0x1](und): Video: h264 (High), yuv420p(progressive), 320x240, 25 fps, 25 tbr\n"
            f"{extra}"
            "  Stream #0:1[0x2](und): Audio: aac (LC), 44100 Hz, mono\n"
            "      displaymatrix: rotation of 180.00 degrees\n"  # audio section: ignored
        )

    assert parse_rotation(banner("    Side data:\n      displaymatrix: rotation of -90.00 degrees\n")) == 270
    assert parse_rotation(banner("    Side data:\n      Display Matrix: rotation of 90.00 degrees\n")) == 90
    assert parse_rotation(banner("    Metadata:\n      rotate          : 90\n")) == 90
    assert parse_rotation(banner("")) == 0
    assert parse_rotation("Input #0\n  Stream #0:0: Video: mjpeg, 300x300 (attached pic)\n") == 0


# ---------------------------------------------------------------- many


def test_compress_many_continues_past_bad_videos(src, tmp_path):
    out = tmp_path / "out"
    items = [
        (src["one_second"], out / "good1.mp4"),
        (src["text"], out / "text.mp4"),
        (src["square"], out / "good2.mp4"),
        (tmp_path / "missing.mp4", out / "missing.mp4"),
        (src["audio_m4a"], out / "audio.mp4"),
    ]
    results, bad = compress_many(items, threads=2)
    assert [r["id"] for r in results] == ["good1", "good2"]
    assert results[0]["src"] == os.fspath(src["one_second"]) and results[0]["dst"] == os.fspath(out / "good1.mp4")
    assert (results[1]["width"], results[1]["height"], results[1]["frames"]) == (224, 224, 3)
    assert not any(r["skipped"] for r in results)
    want_bad = [src["text"], tmp_path / "missing.mp4", src["audio_m4a"]]
    assert [b[0] for b in bad] == [os.fspath(p) for p in want_bad]
    assert "not a video" in bad[0][1] and "not found" in bad[1][1] and "no video stream" in bad[2][1]
    assert sorted(p.name for p in out.iterdir()) == ["good1.mp4", "good2.mp4"]

    # skip_existing keeps valid outputs, re-encodes an invalid one.
    (out / "good2.mp4").write_bytes(b"garbage")
    results, bad = compress_many(items[:3], threads=1)
    assert [(r["id"], r["skipped"]) for r in results] == [("good1", True), ("good2", False)]
    assert results[0]["frames"] == 3 and len(bad) == 1
    results, _ = compress_many(items[:1], skip_existing=False)
    assert results[0]["skipped"] is False


def test_compress_many_makes_the_short_side_asked_for(src, tmp_path):
    """The short side a dataset is compressed to (not only the default 224) reaches every video, the
    file written says so, and an output of another short side is re-encoded, not kept."""
    items = [(src["one_second"], tmp_path / "land.mp4"), (src["portrait"], tmp_path / "portrait.mp4")]
    results, bad = compress_many(items, short_side=64, threads=2)
    assert not bad and [(r["width"], r["height"]) for r in results] == [(86, 64), (64, 86)]
    for r in results:  # the files themselves, probed
        _, (h, w) = _decord_frames(r["dst"])
        assert (w, h) == (r["width"], r["height"])
        assert (probe_video(r["dst"])["width"], probe_video(r["dst"])["height"]) == (w, h)
    (r,), _ = compress_many(items[:1], short_side=64)
    assert r["skipped"] and (r["width"], r["height"]) == (86, 64)
    (r,), _ = compress_many(items[:1], short_side=112)  # another short side: encoded again
    assert not r["skipped"] and (r["width"], r["height"]) == (150, 112)
    assert min(_decord_frames(tmp_path / "land.mp4")[1]) == 112


# ---------------------------------------------------------------- compression="original"
#
# The original code's per-video command, verbatim (OUT keeps IN's extension):
#   ffmpeg -y -i IN -filter:v "scale='if(gt(a,1),trunc(oh*a/2)*2,224)':'if(gt(a,1),224,trunc(ow*a/2)*2)'" \
#          -map 0:v -r 3 OUT

ORIGINAL_SCALE = "scale='if(gt(a,1),trunc(oh*a/2)*2,224)':'if(gt(a,1),224,trunc(ow*a/2)*2)'"


def _run_original_command(src: Path, out: Path) -> Path:
    """The original's command as it was run (for comparing frames; its exit status is checked here)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(src),
           "-filter:v", ORIGINAL_SCALE, "-map", "0:v", "-r", "3", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, stdin=subprocess.DEVNULL)
    return out


def _frame_hashes(path: Path) -> list[str]:
    """MD5 of every decoded frame's pixels (ffmpeg framemd5; timestamps left out)."""
    proc = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:v:0", "-f", "framemd5",
                           "-"], capture_output=True, text=True, check=True)  # fmt: skip
    return [ln.rsplit(",", 1)[1].strip() for ln in proc.stdout.splitlines() if ln and not ln.startswith("#")]


def _codec(path: Path) -> str:
    """Codec name of the first video stream, from the ``ffmpeg -i`` banner (no ffprobe needed)."""
    line = next(ln for ln in ffmpeg_banner(path).splitlines() if ": Video: " in ln)
    return line.split(": Video: ", 1)[1].split()[0]


@pytest.fixture(scope="module")
def orig_src(tmp_path_factory):
    """Small, short sources for the original-mode tests (~1 s to generate)."""
    d = tmp_path_factory.mktemp("orig_src")
    return {
        # 5.3 s at 30 fps (159 frames); 96x64 keeps encoding cheap (outputs are 336x224)
        "avi": make_video(d / "clip.avi", 96, 64, fps=30, seconds=5.3, codec="mpeg4"),
        "mp4": make_video(d / "clip.mp4", 96, 64, fps=30, seconds=5.3),
        "portrait": make_video(d / "portrait.mp4", 240, 320, fps=30, seconds=1),
        "rotated": make_video(d / "rotated.mp4", 320, 240, fps=30, seconds=1, rotate=90),
        "short": make_video(d / "short.avi", 96, 64, fps=25, seconds=1, codec="mpeg4"),
    }


def test_original_size_by_hand():
    # a = iw/ih. a > 1: h = 224, w = trunc(224*a/2)*2.  a <= 1: w = 224, h = trunc(224*a/2)*2.
    assert compress_mod.original_size(320, 240) == (298, 224)  # 224*4/3 = 298.67 -> /2 149.33 -> 149 -> 298
    assert compress_mod.original_size(333, 201) == (370, 224)  # 224*1.6567 = 371.1 -> /2 185.55 -> 185 -> 370
    assert compress_mod.original_size(96, 64) == (336, 224)  # 224*1.5 = 336 -> 168 -> 336
    assert compress_mod.original_size(256, 256) == (224, 224)  # a = 1 is not > 1: w = 224, h = 224*1
    # Portrait: the height is 224*a, not 224/a: a landscape frame with the inverted aspect (squashed).
    assert compress_mod.original_size(240, 320) == (224, 168)  # a = 0.75: 224*0.75 = 168 -> 84 -> 168
    assert compress_mod.original_size(720, 1280) == (224, 126)  # a = 0.5625: 126 -> 63 -> 126
    assert compress_mod.original_size(1080, 1920) == (224, 126)
    assert compress_mod.original_size(240, 320, short_side=112) == (112, 84)


def test_original_command_line():
    exe = ffmpeg_exe()
    enc, mode = compress_mod.original_encoding("/x/v.AVI", exe)
    assert (enc, mode) == ("mpeg4", "vfr")  # avi: MPEG-4 part 2; ffmpeg runs avi outputs in vfr mode
    assert compress_mod.original_encoding("/x/v.mp4", exe) == (compress_mod.video_encoder(exe), "cfr")
    with pytest.raises(BadVideo, match="no known ffmpeg default encoder for .flv"):
        compress_mod.original_encoding("/x/v.flv", exe)
    cmd = compress_mod.original_args(Path("/in.avi"), Path("/o.tmp.mp4"), 3, 224, enc, mode, exe)
    assert cmd[cmd.index("-filter:v") + 1] == ORIGINAL_SCALE  # the expression verbatim
    assert cmd[cmd.index("-r") + 1] == "3" and "fps" not in ORIGINAL_SCALE  # output -r, no fps filter
    assert cmd[cmd.index("-map") + 1] == "0:v:0" and cmd[cmd.index("-c:v") + 1] == "mpeg4"
    assert cmd[cmd.index("-f") + 1] == "mp4" and cmd[-1] == "/o.tmp.mp4" and "-y" in cmd
    assert any(cmd[i] in ("-fps_mode", "-vsync") and cmd[i + 1] == "vfr" for i in range(len(cmd) - 1))
    for quality_or_format in ("-pix_fmt", "-crf", "-b:v", "-q:v", "-preset", "setsar"):
        assert quality_or_format not in " ".join(cmd)  # the encoder's defaults, as in the original


@pytest.mark.parametrize("key, frames, codec", [("avi", 17, "mpeg4"), ("mp4", 18, "h264")])  # h264: needs libx264
def test_original_mode_frames_match_original_command(orig_src, tmp_path, key, frames, codec):
    """5.3 s at 30 fps: the original's -r 3 gives 17 (.avi source) / 18 (.mp4 source) frames, the fps
    filter 16; the original mode's MP4 decodes to exactly the frames of the original's own output."""
    src = orig_src[key]
    dst = tmp_path / "o.mp4"
    res = compress_video(src, dst, compression="original")
    assert (res["width"], res["height"], res["frames"]) == (336, 224, frames)
    assert _codec(dst) == codec  # .avi source: MPEG-4 part 2 (ffmpeg's default for .avi), not H.264
    reference = _run_original_command(src, tmp_path / f"reference{src.suffix}")
    assert _codec(reference) == codec
    assert _frame_hashes(dst) == _frame_hashes(reference)  # pixel-identical, same count
    assert compress_video(src, tmp_path / "ours.mp4")["frames"] == 16  # default mode: fps filter
    assert _leftovers(tmp_path) == []


def test_original_mode_portrait_is_squashed(orig_src, tmp_path):
    # 240x320 (a = 0.75) -> 224 x trunc(224*0.75/2)*2 = 224x168, by the expression (ours: 224x298)
    dst = tmp_path / "p.mp4"
    res = compress_video(orig_src["portrait"], dst, compression="original")
    assert (res["width"], res["height"]) == (224, 168) and abs(res["frames"] - (3 + 2)) <= 1
    assert _decord_frames(dst)[1] == (168, 224)
    # A phone video (coded 320x240, displayed 240x320): autorotated first, then squashed the same way.
    res = compress_video(orig_src["rotated"], tmp_path / "r.mp4", compression="original")
    assert (res["width"], res["height"]) == (224, 168)


def test_original_mode_still_reports_bad_videos(src, orig_src, tmp_path):
    out = tmp_path / "out"
    flv = tmp_path / "clip.flv"  # a good video, but the original's rule for .flv outputs is not covered
    flv.write_bytes(Path(orig_src["short"]).read_bytes())
    items = [
        (orig_src["short"], out / "good.mp4"),
        (src["half"], out / "half.mp4"),  # truncated: ffmpeg's error / the frame count is not ignored
        (src["text"], out / "text.mp4"),
        (flv, out / "flv.mp4"),
    ]
    results, bad = compress_many(items, threads=1, compression="original")
    assert [r["id"] for r in results] == ["good"] and results[0]["width"] == 336
    assert [b[0] for b in bad] == [os.fspath(p) for p in (src["half"], src["text"], flv)]
    assert "truncated" in bad[0][1] and "not a video" in bad[1][1] and "no known ffmpeg default encoder" in bad[2][1]
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4"]  # nothing partial, no temporaries
    with pytest.raises(ValueError, match="compression"):
        compress_many(items, compression="fast")


def test_original_mode_checks_ffmpeg_exit_status(orig_src, tmp_path, monkeypatch):
    """The original ignored ffmpeg's exit status; this mode does not."""
    build = compress_mod.original_args
    monkeypatch.setattr(compress_mod, "original_args", lambda *a: [*build(*a)[:-1], "-no_such_option", build(*a)[-1]])
    dst = tmp_path / "x.mp4"
    with pytest.raises(BadVideo, match=r"ffmpeg failed \(exit [1-9]"):
        compress_video(orig_src["short"], dst, compression="original")
    assert not dst.exists() and _leftovers(tmp_path) == []


def test_existing_outputs_are_kept_only_for_the_same_mode(orig_src, tmp_path):
    items = [(orig_src["short"], tmp_path / "v.mp4")]
    (r,), _ = compress_many(items, compression="original")
    assert not r["skipped"] and r["frames"] == 4  # 1 s at 25 fps, .avi: 3 + 1
    (r,), _ = compress_many(items, compression="original")
    assert r["skipped"]
    (r,), _ = compress_many(items)  # switching back to ours re-encodes
    assert not r["skipped"] and r["frames"] == 3
    (r,), _ = compress_many(items, compression="original")
    assert not r["skipped"] and r["frames"] == 4
