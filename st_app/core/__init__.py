"""Torch-only engine of ST Lab. Nothing below this package may import Qt."""
