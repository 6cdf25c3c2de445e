"""Client-chosen names reach only what the operator published: ``audited_names.py``, in a process of its own.

Its tests record what the process opens through ``sys.addaudithook``, which
is process-wide and permanent: run in the process of the whole suite (with
the threads and hooks earlier tests leave behind) its hypothesis tests ran
past their timeout, while in a fresh process they take seconds. So this
test runs that module in a new pytest process and passes on its verdict.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(900)
def test_the_audited_names_suite_passes_in_a_process_of_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/audited_names.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1] and " failed" not in result.stdout.splitlines()[-1]
