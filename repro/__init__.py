"""repro: a single-node reproducibility kit for QwenLong-L1, SoLoPO, QwenLong-CPRS and Loong."""

__version__ = "0.1.0"
