"""Training and evaluation of one run: settings and identity, the run folder, checkpoints, the loss and
the step, the loop and its CLI (``python -m centerclip.training.train``), evaluation and metrics,
several processes, and the demo's own pretraining."""
