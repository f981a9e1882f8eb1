"""The multi-process directory: stale files removed, and no silent per-worker metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import prometheus_client  # noqa: F401 (this test process uses single-process mode)
import pytest

from bot.observability.multiprocess import ENV_NAME, use_multiprocess_dir


def test_too_late_once_prometheus_client_is_imported_in_single_process_mode(tmp_path: Path):
    with pytest.raises(RuntimeError, match="imported before PROMETHEUS_MULTIPROC_DIR"):
        use_multiprocess_dir(str(tmp_path))
    assert ENV_NAME not in os.environ


def test_a_fresh_process_gets_an_empty_directory_and_multi_process_values(tmp_path: Path):
    stale = tmp_path / "counter_12345.db"
    stale.write_bytes(b"left by an earlier run")
    script = (
        "import sys\n"
        "from bot.observability.multiprocess import use_multiprocess_dir\n"
        "print(use_multiprocess_dir(sys.argv[1]))\n"
        "from prometheus_client import values\n"
        "print(values.ValueClass.__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    directory, value_class = result.stdout.split()
    assert directory == str(tmp_path)
    assert value_class == "MmapedValue"
    assert not stale.exists()
