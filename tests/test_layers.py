"""One dependency direction: the import-linter layers contract in pyproject.toml holds, covers every package,
and breaks on an import that goes upwards (so the check in `make lint` and here can fail)."""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import assistant

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONFIG = PYPROJECT["tool"]["importlinter"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` over the packages in ``tree`` (first on the path), with ``tree``'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", "--config", str(tree / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=tree,
        env=env,
        timeout=120,
    )


def layered_names() -> set[str]:
    (contract,) = CONFIG["contracts"]
    return {name.strip() for layer in contract["layers"] for name in layer.split("|")}


def test_the_packages_keep_one_dependency_direction() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_every_package_and_top_level_module_has_a_layer() -> None:
    """A new ``assistant.x`` or a new root package escapes the contract unless it is placed in a layer."""
    modules = {f"assistant.{info.name}" for info in pkgutil.iter_modules(assistant.__path__)} - {"assistant.__main__"}
    roots = set(CONFIG["root_packages"])
    packaged = {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert roots == packaged
    assert modules | (roots - {"assistant"}) == layered_names()


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The session layer importing the CLI (a layer far above it) is reported with the offending line."""
    for package in CONFIG["root_packages"]:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "web"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    queues = tmp_path / "assistant" / "session" / "queues.py"
    queues.write_text(queues.read_text() + "\nimport assistant.cli.serve\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 kept, 1 broken" in result.stdout
    assert "assistant.session is not allowed to import assistant.cli" in result.stdout
    assert "assistant.session.queues -> assistant.cli.serve" in result.stdout
