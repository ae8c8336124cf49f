"""Helpers shared by the data, training and paper packages: atomic writes and provenance."""
