"""Core of the harness: formats, validation, preprocessing, sampling, downloads, outcomes, provenance."""
