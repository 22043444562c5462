"""The C++ kernels (``cpp_kernels/``, compiled by ``make install`` into ``llmfs._kernels``).

A thin Python layer: it documents shapes and dtypes and turns bad input into clear exceptions.
"""

from __future__ import annotations

try:
    from llmfs import _kernels
except ImportError as err:  # pragma: no cover - only when the build step was skipped
    raise ImportError(
        "the C++ module llmfs._kernels is not built. Run `make install` (or `pip install -e .`) "
        "in the repository, then restart the kernel."
    ) from err


def cpu_features() -> dict:
    """What the CPU offers (detected at run time) and whether the scalar path is forced."""
    return dict(_kernels.cpu_features())
