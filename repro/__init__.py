"""repro: a single-node reproducibility kit for QwenLong-L1, SoLoPO, QwenLong-CPRS and Loong."""

__version__ = "0.1.0"

# Each paper registers its recipe section (and the rest) from its own folder; importing any part of the kit
# registers them, so every recipe knows every paper's keys.
from repro.papers import load_papers  # noqa: E402

load_papers()
