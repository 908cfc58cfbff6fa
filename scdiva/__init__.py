"""ScDiVa: Single-cell Deep Variational Analysis."""

__version__ = "0.1.0"
