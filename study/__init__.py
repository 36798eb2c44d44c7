"""Music audio tagging at scale: a reproducible study of Pons et al. (ISMIR 2018)."""
from pathlib import Path

__version__ = "0.1.0"
# the checkout holding the package (installed editable): relative folders in configs start here
REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
