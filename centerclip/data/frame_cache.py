"""HDF5 frame cache: every 3-fps frame of a dataset, centre-cropped to a square.

Layout of the file::

    /frames     uint8 [total_frames, size, size, 3], one frame per chunk   (storage raw, lzf, gzip)
    /jpeg       vlen uint8 [total_frames], one JPEG per frame              (storage jpeg)
    /video_ids  variable-length str [n_videos]
    /offsets    int64 [n_videos]   first row of each video
    /counts     int64 [n_videos]   number of frames of each video
    /missing/video_ids, /missing/reasons   variable-length str: every video of the dataset that
                is NOT in the cache, with why (bad at compression or at caching)
    attrs: size, fps, storage, jpeg_quality, created_by, n_videos, total_frames, n_missing

Storage is chosen per dataset by measurement (bench/README.md, "Data"): ``raw`` is the only one
that reads >= 300 clips/s on one CPU core and is the default; ``jpeg`` is ~13x smaller and the
choice when disk, not CPU, is the limit (ActivityNet at 3 fps is ~1 TB raw).

Decoding an mp4 costs far more than reading a slice of an HDF5 dataset, so training reads
only from here. Reads use contiguous slices (h5py fancy indexing with an index array is
50-100x slower) and the file is opened lazily in each worker process.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import simplejpeg

from centerclip.util import atomic
from centerclip.data.compress import BadVideo

STORAGES = ("raw", "lzf", "gzip", "jpeg")


def centre_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """Centre crop uint8 frames [T, H, W, 3] to [T, size, size, 3], zero-padding a side < size."""
    t, h, w, c = frames.shape
    if h < size or w < size:
        padded = np.zeros((t, max(h, size), max(w, size), c), frames.dtype)
        top, left = (padded.shape[1] - h) // 2, (padded.shape[2] - w) // 2
        padded[:, top:top + h, left:left + w] = frames
        frames, h, w = padded, padded.shape[1], padded.shape[2]
    top, left = (h - size) // 2, (w - size) // 2
    return frames[:, top:top + size, left:left + size]


def decode_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a video as uint8 [T, H, W, 3] (decord), raising BadVideo when unreadable."""
    import decord

    try:
        reader = decord.VideoReader(str(path), num_threads=1)
        n = len(reader)
        if n == 0:
            raise BadVideo(f"{path}: no frames")
        return reader.get_batch(list(range(n))).asnumpy()
    except (decord.DECORDError, RuntimeError) as exc:  # decord raises plain RuntimeError on open
        raise BadVideo(f"{path}: cannot decode ({str(exc).strip()[:200]})") from None


def _jpeg_bytes(frame: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def _jpeg_decode(data: np.ndarray) -> np.ndarray:
    """One JPEG -> uint8 [S, S, 3]. simplejpeg (libjpeg-turbo, a dependency) decodes to the same
    pixels as Pillow at ~1.6x the speed (bench/README.md, "Data")."""
    return simplejpeg.decode_jpeg(data.tobytes(), colorspace="RGB")


def build_frame_cache(videos: Iterable[tuple[str, str | os.PathLike]], out_path: str | os.PathLike,
                      size: int = 224, fps: float = 3.0, storage: str = "raw", jpeg_quality: int = 90,
                      missing: Iterable[tuple[str, str]] = (), progress: bool = False) -> list[tuple[str, str]]:
    """Decode each (video_id, compressed video path) and write all its frames into ``out_path``.

    Args:
        videos: (video_id, path of the 3-fps video) pairs.
        out_path: the HDF5 file to write.
        size: side of the centre crop.
        fps: frame rate of the videos (recorded).
        storage: ``raw`` | ``lzf`` | ``gzip`` (HDF5 filters on uint8 frames) | ``jpeg`` (one JPEG
            per frame, ``jpeg_quality``).
        missing: (video_id, reason) of the dataset's videos that never reached this step (bad at
            compression); recorded in the file together with those that fail to decode here.

    Written to a temporary file beside ``out_path`` and renamed at the end, so a killed job
    never leaves a file that looks complete. Returns the videos that could not be decoded as
    (video_id, reason); they are absent from the cache, recorded in ``/missing``, and the caller
    must report them too.
    """
    if storage not in STORAGES:
        raise ValueError(f"unknown frame cache storage {storage!r}: choose one of {', '.join(STORAGES)}")
    from tqdm import tqdm

    out_path, missing = Path(out_path), list(missing)
    bad: list[tuple[str, str]] = []
    index: list[tuple[str, int, int]] = []  # (video_id, first frame, frame count)
    with atomic.path(out_path) as tmp:
        with h5py.File(tmp, "w") as f:
            data = _frames_dataset(f, storage, size)
            for video_id, path in tqdm(list(videos), desc=f"cache {out_path.name}", disable=not progress):
                try:
                    frames = centre_crop(decode_video(path), size)
                except BadVideo as exc:
                    bad.append((video_id, str(exc)))
                    continue
                total = index[-1][1] + index[-1][2] if index else 0
                _append_frames(data, frames, total, storage, jpeg_quality)
                index.append((video_id, total, len(frames)))
            _write_index(f, index, missing + bad)
            f.attrs.update({"size": size, "fps": fps, "storage": storage, "jpeg_quality": jpeg_quality,
                            "created_by": "centerclip.data.frame_cache", "n_videos": len(index),
                            "total_frames": sum(n for _, _, n in index), "n_missing": len(missing) + len(bad)})
    return bad


def _frames_dataset(f: h5py.File, storage: str, size: int) -> h5py.Dataset:
    """The growable dataset every frame goes into: ``/jpeg`` (one encoded frame per row) or ``/frames``
    uint8 [N, size, size, 3], one frame per chunk, HDF5-compressed for lzf / gzip."""
    if storage == "jpeg":
        return f.create_dataset("jpeg", shape=(0,), maxshape=(None,), dtype=h5py.vlen_dtype(np.uint8), chunks=(64,))
    return f.create_dataset("frames", shape=(0, size, size, 3), maxshape=(None, size, size, 3), dtype=np.uint8,
                            chunks=(1, size, size, 3), compression=None if storage == "raw" else storage)


def _append_frames(data: h5py.Dataset, frames: np.ndarray, total: int, storage: str, jpeg_quality: int) -> None:
    """Write one video's frames uint8 [T, S, S, 3] after the first ``total`` rows of ``data``."""
    data.resize(total + len(frames), axis=0)
    if storage == "jpeg":
        for i, frame in enumerate(frames):
            data[total + i] = _jpeg_bytes(frame, jpeg_quality)
    else:
        data[total:total + len(frames)] = frames


def _write_index(f: h5py.File, index: list[tuple[str, int, int]], lost: list[tuple[str, str]]) -> None:
    """``/video_ids``, ``/offsets``, ``/counts`` of the cached videos and ``/missing/{video_ids, reasons}``."""
    string = h5py.string_dtype()
    f.create_dataset("video_ids", data=np.array([v for v, _, _ in index], dtype=object), dtype=string)
    f.create_dataset("offsets", data=np.array([o for _, o, _ in index], dtype=np.int64))
    f.create_dataset("counts", data=np.array([n for _, _, n in index], dtype=np.int64))
    group = f.create_group("missing")
    group.create_dataset("video_ids", data=np.array([v for v, _ in lost], dtype=object), dtype=string)
    group.create_dataset("reasons", data=np.array([r for _, r in lost], dtype=object), dtype=string)


def _strings(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in values]


class FrameCache:
    """Read access to a frame cache; safe to pickle into DataLoader workers (reopens lazily)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: frame cache missing; build it with the 'frame_cache' rule")
        with h5py.File(self.path, "r") as f:
            ids = _strings(f["video_ids"][()])
            self._index = {vid: (int(o), int(c)) for vid, o, c in zip(ids, f["offsets"][()], f["counts"][()])}
            self.size = int(f.attrs["size"])
            self.fps = float(f.attrs["fps"])
            self.storage = str(f.attrs.get("storage", "raw"))
            #: video_id -> reason, for every video of the dataset that is not in the cache
            self.missing: dict[str, str] = (
                dict(zip(_strings(f["missing/video_ids"][()]), _strings(f["missing/reasons"][()])))
                if "missing" in f else {})
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"], state["_pid"] = None, None
        return state

    def _data(self) -> h5py.Dataset:
        # an HDF5 handle must not cross a fork: reopen in each process
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file["jpeg" if self.storage == "jpeg" else "frames"]

    def __contains__(self, video_id: str) -> bool:
        return video_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    @property
    def video_ids(self) -> list[str]:
        return list(self._index)

    def num_frames(self, video_id: str) -> int:
        return self._index[video_id][1]

    def read(self, video_id: str, indices: np.ndarray | list[int]) -> np.ndarray:
        """Frames ``indices`` (sorted or not, repeats allowed) of a video: uint8 [len(indices), S, S, 3]."""
        offset, count = self._index[video_id]
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size == 0:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        if idx.min() < 0 or idx.max() >= count:
            raise IndexError(f"{video_id}: frame index out of range 0..{count - 1}")
        # JPEG: decode each distinct frame once (a short video repeats its last frame up to T-1 times)
        want, back = np.unique(idx, return_inverse=True) if self.storage == "jpeg" else (idx, None)
        lo, hi = int(want[0] if back is not None else idx.min()), int(idx.max()) + 1
        data = self._data()
        if hi - lo <= 2 * want.size:
            # one contiguous read beats many small ones when the span is dense
            rows = data[offset + lo:offset + hi][want - lo]
        else:
            rows = [data[offset + int(i)] for i in want]
        if back is not None:
            return np.stack([_jpeg_decode(r) for r in rows])[back.reshape(-1)]
        return rows if isinstance(rows, np.ndarray) else np.stack(rows)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
