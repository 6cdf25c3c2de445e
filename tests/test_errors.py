"""One root error class: every exception the project defines derives from ``AssistantError``, except the signals."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from assistant.backends.local.llm import StopGeneration
from assistant.errors import AssistantError
from assistant.session.queues import QueueClosed
from assistant.tools.base import ToolCancelled
from tests.test_layers import CONFIG

# Signals, not errors (see assistant.errors): they end a stream or a call the way StopIteration
# and CancelledError do, and an `except AssistantError` must not swallow them.
SIGNALS = {ToolCancelled, StopGeneration, QueueClosed}


def project_exceptions() -> set[type[BaseException]]:
    """Every exception class defined in the project's packages (importing each module; none is skipped)."""
    found: set[type[BaseException]] = set()
    for root in CONFIG["root_packages"]:
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, f"{root}."):
            if info.name.endswith(".__main__"):
                continue  # runs the command line on import
            module = importlib.import_module(info.name)
            found |= {
                value
                for value in vars(module).values()
                if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__
            }
    return found


def test_every_project_error_derives_from_the_root() -> None:
    exceptions = project_exceptions()
    assert SIGNALS <= exceptions and len(exceptions) > 40  # the walk found the modules
    strays = {f"{e.__module__}.{e.__qualname__}" for e in exceptions - SIGNALS if not issubclass(e, AssistantError)}
    assert strays == set()
    assert not any(issubclass(signal, AssistantError) for signal in SIGNALS)


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        ("assistant.config.ConfigError", ValueError),
        ("assistant.tools.schema.SchemaError", TypeError),
        ("assistant.session.profiles.UnknownProfile", LookupError),
        ("audio.devices.NoDevice", RuntimeError),
    ],
)
def test_errors_keep_the_builtin_they_refine(error: str, builtin: type[Exception]) -> None:
    """Code that catches ``ValueError`` (or pydantic, argparse) still catches them: behaviour is unchanged."""
    module, name = error.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, AssistantError) and issubclass(cls, builtin)
