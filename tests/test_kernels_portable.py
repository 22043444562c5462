"""The kernel headers build and compute right without x86 code (the arm64 build) and with it.

cpp_kernels/tests/portable.cpp checks every kernel against naive loops in C++. It is compiled
with -DLLMFS_NO_X86, which hides all x86 intrinsics from the compiler exactly as on arm64, and
again normally (then every path this CPU has is checked: scalar, avx2, avx512), also with
LLMFS_FORCE_AVX2=1, which must keep AVX-512 out of the automatic choice; all must build
warning-free and pass. Where an arm64 cross compiler and qemu are installed
(`apt-get install g++-aarch64-linux-gnu qemu-user`; not part of `make setup`), it is also built
for arm64 and run there; elsewhere that case is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # three C++ builds: `make unit` leaves them to `make test`

ROOT = Path(__file__).resolve().parents[1] / "cpp_kernels"
CXX = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


@pytest.mark.skipif(CXX is None, reason="no C++ compiler on PATH")
@pytest.mark.parametrize("flags,env", [(["-DLLMFS_NO_X86"], {}), ([], {}), ([], {"LLMFS_FORCE_AVX2": "1"})],
                         ids=["portable", "native-dispatch", "native-avx2"])
def test_headers_build_and_pass_without_python(tmp_path, flags, env):
    exe = tmp_path / "portable"
    cmd = [CXX, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Werror", *flags, "-I", str(ROOT / "src"),
           str(ROOT / "tests" / "portable.cpp"), "-o", str(exe), "-pthread"]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    if flags:  # no x86 intrinsic may be reachable: the portable build must not even mention them
        assert "immintrin" not in subprocess.run([CXX, "-std=c++17", "-E", *flags, "-I", str(ROOT / "src"),
                                                  str(ROOT / "tests" / "portable.cpp")], capture_output=True, text=True).stdout
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, env={**os.environ, **env})
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip().endswith("ok") and "scalar path: ok" in run.stdout
    if flags:
        assert "x86 code compiled: 0" in run.stdout and "avx2 path" not in run.stdout
    if env:
        assert "automatic path (matmul): avx512" not in run.stdout


ARM_CXX, QEMU = shutil.which("aarch64-linux-gnu-g++"), shutil.which("qemu-aarch64")


@pytest.mark.skipif(ARM_CXX is None or QEMU is None, reason="no arm64 cross compiler / qemu-aarch64")
def test_headers_build_and_pass_on_arm64(tmp_path):
    exe = tmp_path / "portable_arm64"
    build = subprocess.run([ARM_CXX, "-std=c++17", "-O2", "-Wall", "-Wextra", "-Werror", "-static", "-I", str(ROOT / "src"),
                            str(ROOT / "tests" / "portable.cpp"), "-o", str(exe), "-pthread"], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([QEMU, str(exe)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "x86 code compiled: 0" in run.stdout and run.stdout.strip().endswith("ok")
