"""LLMFS: the shared code of the course "LLMs from scratch".

The shared core, used by every series:

- ``llmfs.config``   run modes (FAST / FULL), seeding, device choice, progress bars
- ``llmfs.assets``   the registry of every external file, fetched offline-safely and hash-checked
- ``llmfs.data``     loaders for the course's datasets (MNIST, King James text, ...)
- ``llmfs.plots``    shared figures (image grids, learning curves, confusion matrices)
- ``llmfs.kernels``  the C++ inference kernels (pybind11), see ``cpp_kernels/``

One subpackage per series, each importing only the core and the series before it:
``llmfs.basics`` (01CB), ``llmfs.pretrain`` (02PT), then ``finetune``, ``rag``, ``agents`` and
``inference``. Course tooling (notebook checker, slides, benchmarks) lives in ``tools/`` of the
repository and is not part of the installed package.
"""

from llmfs.config import FAST, REPO_URL, device, headline, progress, seed_everything, setup

__version__ = "0.1.0"
__all__ = ["FAST", "REPO_URL", "device", "headline", "progress", "seed_everything", "setup", "__version__"]
