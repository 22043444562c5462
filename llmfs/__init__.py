"""LLMFS: the shared code of the course "LLMs from scratch".

Each module holds one idea and is built, in front of the learner, in a notebook first:

- ``llmfs.config``  run modes (FAST / FULL), seeding, device choice, progress bars
- ``llmfs.assets``  the registry of every external file, fetched offline-safely and hash-checked
- ``llmfs.data``    loaders for the course's datasets (MNIST, King James text, ...)
- ``llmfs.kernels`` the C++ inference kernels (pybind11), see ``cpp_kernels/``
- ``llmfs.plots``   shared figures (image grids, learning curves, confusion matrices)
- 01CB: ``engine`` (scalar autograd), ``mlp_numpy``, ``classifier`` (a PyTorch training loop), ``numpy_conv``
- 02PT: ``attention``, ``rope``, ``transformer``, ``tokenizers``, ``gpt``, ``llama``, ``train``,
  ``checkpoint``, ``decoding``
- benchmarks: ``bench`` (kernels), ``bench_mlp``, ``bench_train``
"""

from llmfs.config import FAST, REPO_URL, device, progress, seed_everything, setup

__version__ = "0.1.0"
__all__ = ["FAST", "REPO_URL", "device", "progress", "seed_everything", "setup", "__version__"]
