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
