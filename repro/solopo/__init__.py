"""SoLoPO: short-to-long preference optimization (preference losses, SoLo-RA, pair selection)."""
