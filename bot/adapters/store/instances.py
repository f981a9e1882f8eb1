"""Whether an instance may still be working: the one liveness rule every store applies.

An instance that stopped is gone. On this host the process table decides (a
SIGKILLed process is gone at once, whatever its last heartbeat said); on
another host, a heartbeat within `INSTANCE_LEASE`. An id never registered (a
process from before instances were recorded) is gone.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from pathlib import Path

# An instance that has not beaten its heart for this long is gone (it beats every 5 s).
INSTANCE_LEASE = timedelta(seconds=30)
FORGET_INSTANCES_AFTER = timedelta(days=7)


def instance_is_live(
    instance_id: str, *, stopped_at: datetime | None, heartbeat_at: datetime, now: datetime
) -> bool:
    """Whether the registered instance `instance_id` may still be working at `now`."""
    if stopped_at is not None:
        return False
    here = process_state_here(instance_id)
    if here is None:
        return now - heartbeat_at < INSTANCE_LEASE
    return here


def process_state_here(instance_id: str) -> bool | None:
    """Whether the process `instance_id` (host:pid:random) still runs, if it ran on this
    host; None for another host. A zombie (killed, not yet reaped) is not running."""
    host, _, rest = instance_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    try:
        stat = Path(f"/proc/{pid_text}/stat").read_text()
    except OSError:
        return True  # no /proc here: the signal check is all there is
    return stat.rpartition(")")[2].split()[0] != "Z"
