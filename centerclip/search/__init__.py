"""``centerclip-search``: index a folder of videos with a trained model and search it by text.

Three commands (:mod:`centerclip.search.cli`): ``index`` encodes every video under a folder into an
HDF5 index (incrementally: only new or changed videos are re-encoded), ``query`` ranks the indexed
videos for one or more texts by exact cosine (a table, JSON or an HTML page), ``embed-text`` writes
text embeddings. The model is a training run of this package or one of the authors' released
checkpoints (:mod:`centerclip.search.checkpoints`); videos are decoded exactly as the data stage
decodes them (:mod:`centerclip.search.videos`), so an indexed video gives the embedding the
evaluation would give it.

Needs the ``workflow`` extra (h5py, decord, ffmpeg-python, Pillow, tqdm); never imports Snakemake.
"""
