"""Music audio tagging at scale: a reproducible study of Pons et al. (ISMIR 2018)."""

__version__ = "0.1.0"
