"""Protein backbones: structure files, ideal geometry, datasets, validation, generation."""
