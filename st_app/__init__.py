"""ST Lab: explore residual networks as ensembles of sub-networks (stimulative training)."""

__version__ = "0.1.0"
