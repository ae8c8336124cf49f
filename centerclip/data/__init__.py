"""Data stage: synthetic datasets, ffmpeg compression, HDF5 frame cache, sampling datasets."""
from centerclip.data.compress import BadVideo  # noqa: F401
from centerclip.data.compress import compress_video  # noqa: F401
