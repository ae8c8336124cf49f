"""Data stage: where datasets come from (upstreams; digests, fetch, archives), their layouts and parsers
(layouts, parsers, activitynet), synthetic twins, ffmpeg compression (compress, shards), the HDF5 frame cache
and the sampling datasets."""
from centerclip.data.compress import BadVideo  # noqa: F401
from centerclip.data.compress import compress_video  # noqa: F401
