"""Data stage: synthetic datasets, ffmpeg compression, HDF5 frame cache, sampling datasets."""
