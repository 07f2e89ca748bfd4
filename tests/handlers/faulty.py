"""A function entry point that misbehaves on request: the body names the fault.

`fine` answers `fine from PID`; `slow` takes 50 ms; `hang` never returns; `exit` calls
`os._exit(3)`; `kill` SIGKILLs its own process; `sysexit` calls `sys.exit(3)`.
"""

import os
import signal
import sys
import time


def handle(data, context):
    if data is None:
        return None
    bodies = [bytes(row.get("body") or row.get("data") or b"").decode() for row in data]
    if "hang" in bodies:
        time.sleep(3600)
    if "exit" in bodies:
        os._exit(3)
    if "kill" in bodies:
        os.kill(os.getpid(), signal.SIGKILL)
    if "sysexit" in bodies:
        sys.exit(3)
    if "slow" in bodies:
        time.sleep(0.05)
    return [f"{body} from {os.getpid()}" for body in bodies]
