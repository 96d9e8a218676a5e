"""The CPU this process runs on (model name and flags), read once for reports and caches alike:
timings and the ``auto`` backend choice only hold for the CPU they were measured on."""
from __future__ import annotations

import platform
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_model_and_flags() -> tuple[str, str]:
    """``("AMD EPYC", "flags : fpu vme ...")``; the platform's name and no flags off Linux."""
    cpu, flags = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    return cpu, flags


# the SIMD and matrix-unit flags that reports name: they decide which backend and precision win
REPORTED_SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                       "amx_bf16", "amx_int8")


def present_flags(names) -> list[str]:
    """Those of ``names`` that this CPU's flags line holds, as whole words, in the order given."""
    flags = f" {cpu_model_and_flags()[1].split(':', 1)[-1].strip()} "
    return [name for name in names if f" {name} " in flags]


@lru_cache(maxsize=1)
def cpu_family_model() -> str | None:
    """``"6/207"``: /proc/cpuinfo's family and model numbers, which tell CPU generations apart where the
    model name does not (a virtual machine often shows only "Intel(R) Xeon(R) Processor"); None where
    /proc/cpuinfo has no such lines (off Linux, or on CPUs other than x86)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                if len(fields) == 2:
                    return f"{fields['cpu family']}/{fields['model']}"
    except OSError:
        pass
    return None


_freed_memory_kept = False  # set by keep_freed_memory() once it took effect in this process


def allocator_setting() -> str:
    """This process's malloc setting as the timing records name it: timings (and the backend auto
    picks) depend on it, so what measures them records it."""
    return "glibc, freed memory kept (mallopt)" if _freed_memory_kept else "default"


def keep_freed_memory() -> bool:
    """Make glibc's malloc serve large blocks from its heap and keep what is freed, for this process.

    By default glibc maps every block over 128 KB-32 MB afresh with ``mmap`` and unmaps it on free, so
    each large temporary (STFT frames, Wiener blocks, output buffers) is page-faulted in again; on the
    project's VMs that was about a sixth of a 3-minute separation's wall time (median 27.3 s against
    23.0 s, sys time 9.1 s against 4.3 s, session 10). This is what PyTorch's CPU tuning guide gets from
    jemalloc/tcmalloc, here with ``mallopt`` and no extra library; peak RSS grows (1.6 to 2.2 GB there).
    ``DRUMSEP_KEEP_FREED_MEMORY=0`` turns it off. Returns whether it took effect (glibc only)."""
    import ctypes
    import os

    if os.environ.get("DRUMSEP_KEEP_FREED_MEMORY", "1") == "0" or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    global _freed_memory_kept
    _freed_memory_kept = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    return _freed_memory_kept
