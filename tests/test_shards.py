"""The shard table of rule compress_shard, read by rule frame_cache: its bytes (shards written before it had
one owner must stay valid) and what reads back."""

import pytest

from centerclip.data.shards import SHARD_COLUMNS, bad_row, compressed_row, read_shard, read_shards, write_shard

HEADER = "video_id\tsplit\tstatus\tpath\twidth\theight\tframes\treason\n"


def test_bytes_are_those_of_the_finished_shards(tmp_path):
    rows = [compressed_row("video1", "train", "/c/video1.mp4", 298, 224, 9),
            bad_row("video2", "test", "ffmpeg failed (exit 1): moov atom not found")]
    write_shard(rows, tmp_path / "shard0.tsv")
    assert (tmp_path / "shard0.tsv").read_text() == (
        HEADER + "video1\ttrain\tok\t/c/video1.mp4\t298\t224\t9\t\n"
        "video2\ttest\tbad\t\t\t\t\tffmpeg failed (exit 1): moov atom not found\n")
    write_shard([], tmp_path / "empty.tsv")  # a shard of no video (more shards than videos)
    assert (tmp_path / "empty.tsv").read_text() == HEADER


def test_round_trip_with_spaces_unicode_tabs_newlines_and_quotes(tmp_path):
    odd = ["a video with spaces", "vidéo_日本語", "tab\there", "new\nline", 'say "hi"', "semi;colon,comma"]
    rows = [compressed_row(v, "train", f"/out dir/{v}.mp4", 224, 224, 3) for v in odd]
    rows.append(bad_row("bad one", "test", 'no "moov" atom\tat all'))
    write_shard(rows[:4], tmp_path / "shard0.tsv")
    write_shard(rows[4:], tmp_path / "shard1.tsv")
    back = read_shards([tmp_path / "shard0.tsv", tmp_path / "shard1.tsv"])
    assert list(back.columns) == list(SHARD_COLUMNS)
    assert back.to_dict("records") == [{k: str(v) for k, v in r.items()} for r in rows]
    assert read_shard(tmp_path / "shard1.tsv").reason.tolist()[-1] == 'no "moov" atom\tat all'


def test_a_carriage_return_is_refused_not_written(tmp_path):
    with pytest.raises(ValueError, match=r"video 'v1': its path .* carriage return"):
        write_shard([compressed_row("v1", "train", "/c/v\r1.mp4", 224, 224, 3)], tmp_path / "shard0.tsv")
    assert not (tmp_path / "shard0.tsv").exists()


def test_not_a_shard_table(tmp_path):
    (tmp_path / "x.tsv").write_text("video_id\tsplit\nv\ttrain\n")
    with pytest.raises(ValueError, match=r"x.tsv: not a shard table, missing columns \['status'"):
        read_shard(tmp_path / "x.tsv")
