"""Set up prometheus_client's multi-process mode, before prometheus_client is imported.

prometheus_client decides once, when it is first imported, whether values live
in memory (one process) or in files under `PROMETHEUS_MULTIPROC_DIR` (shared
by gunicorn's workers). That decision is made from the environment, so this
module writes it there; it imports nothing of prometheus_client itself.
"""

from __future__ import annotations

import glob
import os
import sys
import tempfile
from pathlib import Path

ENV_NAME = "PROMETHEUS_MULTIPROC_DIR"


def use_multiprocess_dir(path: str | None) -> str:
    """Use `path` (or a new temporary directory) for every process's metric values.

    Removes the files a previous run left there, so counters start at zero, and
    exports the directory for prometheus_client. Raises RuntimeError if
    prometheus_client was already imported in single-process mode (its values
    would silently stay per worker).
    """
    directory = path or tempfile.mkdtemp(prefix="credits-bot-metrics-")
    Path(directory).mkdir(parents=True, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    values = sys.modules.get("prometheus_client.values")
    if values is not None and getattr(values, "ValueClass", None) is getattr(
        values, "MutexValue", None
    ):
        raise RuntimeError(
            "prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set; "
            "metrics would not add up across workers"
        )
    os.environ[ENV_NAME] = directory
    return directory
