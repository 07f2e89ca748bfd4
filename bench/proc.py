"""Reading a process's peak memory: /proc's VmHWM on Linux, getrusage elsewhere.

The memory harness (bench.memory) prints it from each fresh child process.
"""

from __future__ import annotations

import sys


def peak_rss() -> int:
    """This process's peak resident memory, in bytes.

    Linux: VmHWM, which starts afresh at exec (getrusage's ru_maxrss survives exec, so a child
    would report its parent's peak when that is larger).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, others KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
