"""pytest plugin for `make sanitize`: import llmfs._kernels from the ASan/UBSan build.

The editable install maps llmfs._kernels to the normal build; this plugin (loaded with
``-p sanitize_plugin`` before any test module) puts the sanitized module, built by
cpp_kernels/sanitize.sh into $LLMFS_SANITIZED_MODULE, in its place.
"""

import importlib.util
import os
import sys

import llmfs

_path = os.environ["LLMFS_SANITIZED_MODULE"]
_spec = importlib.util.spec_from_file_location("llmfs._kernels", _path)
_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_module)
sys.modules["llmfs._kernels"] = _module
llmfs._kernels = _module

import llmfs.kernels  # noqa: E402

assert llmfs.kernels._kernels is _module, "llmfs.kernels was imported before the sanitized module"


def pytest_report_header(config):
    return f"llmfs._kernels: sanitized build {_path}"
