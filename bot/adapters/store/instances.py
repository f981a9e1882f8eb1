"""Whether an instance may still be working: the one liveness rule every store applies.

An instance is live while it has not recorded its stop and has beaten its heart
within `INSTANCE_LEASE`. On this host (the same hostname *and* the same PID
namespace: two containers may share a hostname, and a restarted container gets a
new namespace whose PIDs repeat) the process table can only shorten that: a
SIGKILLed process is gone at once. A heartbeat is always required, so a process
that merely reuses a dead one's PID never keeps it alive. An id never registered (a
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
    if stopped_at is not None or now - heartbeat_at >= INSTANCE_LEASE:
        return False
    return process_state_here(instance_id) is not False


def this_host() -> str:
    """This host as instance ids name it: the hostname and, where there is one, the PID
    namespace (`hostname@4026531836`), so that PIDs are only compared where they mean
    the same process."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}@{namespace}"


def process_state_here(instance_id: str) -> bool | None:
    """Whether the process `instance_id` (host:pid:random) still runs, if it ran on this
    host (and PID namespace); None for another. A zombie (killed, not reaped) is not
    running."""
    host, _, rest = instance_id.partition(":")
    pid_text = rest.partition(":")[0]
    if host != this_host() or not pid_text.isdigit():
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
