"""Course tooling that learners never import and the installed package does not ship: the notebook
checker and fixer, the README table writer, the slide renderer and the benchmarks. Run from the
repository root: ``python -m tools.notebooks check``, ``python -m tools.bench``."""
