"""Import a library so that the numba kernels it compiles are kept in numba's on-disk cache.

scib-metrics imports umap and pynndescent, which declare about 200 numba functions without
``cache=True``: every process that scores metrics compiled them again (about 35 s on import and
10 s on the first neighbour graph, per process, on one CPU core). Importing them with caching on
makes that a once-per-machine cost; the compiled code is the same, and numba re-compiles whenever
a library's source file changes. The cache lives in ``NUMBA_CACHE_DIR`` when it is set (the test
suite shares one), else beside the library's files or in the user's cache directory (numba's rule).
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


def import_with_numba_cache(module: str) -> ModuleType:
    """Import ``module`` with ``numba.njit`` defaulting to ``cache=True`` during the import.

    Functions that numba cannot cache are compiled as before (numba warns and goes on). A module
    already imported is returned as it is: the kernels its import compiled are not re-made.

    Parameters
    ----------
    module
        Dotted name of the module to import.

    Returns
    -------
    The imported module.
    """
    if module in sys.modules:
        return sys.modules[module]
    # deferred: imports numba (this module is imported at workflow parse time)
    import numba

    plain_njit = numba.njit

    def cached_njit(*args, **kwargs):
        kwargs.setdefault("cache", True)
        return plain_njit(*args, **kwargs)

    numba.njit = cached_njit
    try:
        return importlib.import_module(module)
    finally:
        numba.njit = plain_njit
