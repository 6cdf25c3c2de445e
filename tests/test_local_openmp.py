"""The OpenMP wait policy: runtimes sleep when idle, llama.cpp's spins a moment first, the user's choice stands."""

from __future__ import annotations

import os

import pytest

from assistant.backends.local import devices
from assistant.backends.local.devices import OPENMP_WAIT, briefly_spinning_openmp, quiet_openmp


@pytest.fixture
def no_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process whose user set no wait policy, before the package chose one."""
    monkeypatch.delenv(OPENMP_WAIT, raising=False)
    monkeypatch.setattr(devices, "_quieted_openmp", False)


def test_runtimes_sleep_when_idle_but_llama_cpp_loads_with_the_default_wait(no_policy: None) -> None:
    quiet_openmp()
    assert os.environ[OPENMP_WAIT] == "PASSIVE"
    with briefly_spinning_openmp():
        assert OPENMP_WAIT not in os.environ  # what llama.cpp's runtime reads as it loads
    assert os.environ[OPENMP_WAIT] == "PASSIVE"  # for whatever loads later


@pytest.mark.parametrize("chosen", ["PASSIVE", "ACTIVE"])
def test_a_policy_the_user_set_is_left_alone(no_policy: None, monkeypatch: pytest.MonkeyPatch, chosen: str) -> None:
    monkeypatch.setenv(OPENMP_WAIT, chosen)
    quiet_openmp()
    with briefly_spinning_openmp():
        assert os.environ[OPENMP_WAIT] == chosen
    assert os.environ[OPENMP_WAIT] == chosen
