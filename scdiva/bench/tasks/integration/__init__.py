"""Batch integration: the built-in methods, the runner, scIB scoring and the trajectory figure."""
