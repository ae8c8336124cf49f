"""CenterCLIP: token clustering for efficient text-video retrieval (SIGIR 2022), reproduced."""

__version__ = "0.1.0"
