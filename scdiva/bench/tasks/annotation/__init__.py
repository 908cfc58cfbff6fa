"""Cell-type annotation: the built-in methods, the runner (reference -> query), metrics and figures.

The reference/query split by batch is :mod:`scdiva.bench.core.sampling`.
"""
