"""The assistant's config file: TOML, found at ``--config``, ``$ASSISTANT_CONFIG`` or the user's config dir.

    # ~/.config/assistant/config.toml (Linux; see `assistant tools --help` for yours)
    [tools]
    builtins = true                    # time, calculator, timers, reminders, memory
    modules = ["my_tools", "./more_tools.py"]   # import names, or files next to this one
    disable = ["set_reminder"]         # tool names to leave out
    timeout = 30                       # seconds, for tools that set none

    [[tools.mcp]]                      # an MCP server started as a subprocess (stdio)
    name = "files"
    command = "npx"
    args = ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/notes"]
    env = { LOG_LEVEL = "warn" }
    prefix = "files_"                  # optional: put before each of its tool names
    timeout = 20                       # optional: per-call timeout for its tools

    [[tools.mcp]]                      # an MCP server over streamable HTTP
    name = "search"
    url = "http://127.0.0.1:8000/mcp"
    headers = { Authorization = "Bearer ${SEARCH_TOKEN}" }

    [personas]
    dirs = ["./personas", "/srv/assistant/personas"]   # folders of NAME.toml persona files clients may choose

``${VAR}`` in ``env`` and ``headers`` values is taken from the environment,
so secrets stay out of the file. Relative paths (module files, an MCP
server's ``cwd``, persona folders) are relative to the config file. Unknown keys inside a
known section are errors (a typo should not silently do nothing); sections
this version does not know are left for the parts that read them.
"""

from __future__ import annotations

import argparse
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant.errors import AssistantError

CONFIG_ENV = "ASSISTANT_CONFIG"
CONFIG_FILE = "config.toml"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(AssistantError, ValueError):
    """The config file is missing, unreadable or wrong; the message names the file and the key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class McpServerConfig(Section):
    """One MCP server: a command to run (stdio) or a URL (streamable HTTP)."""

    name: str
    command: str | None = None
    args: list[str] = []
    env: dict[str, str] = {}
    cwd: Path | None = None
    url: str | None = None
    headers: dict[str, str] = {}
    prefix: str = ""
    timeout: float | None = Field(default=None, gt=0)
    enabled: bool = True

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (stdio) or url (streamable HTTP), not both or neither")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {self.url!r}")
        return self

    @property
    def transport(self) -> str:
        return "stdio" if self.command is not None else "http"


class ToolsConfig(Section):
    """The ``[tools]`` section."""

    builtins: bool = True
    modules: list[str] = []
    disable: list[str] = []
    timeout: float = Field(default=30.0, gt=0)
    mcp: list[McpServerConfig] = []

    @field_validator("mcp")
    @classmethod
    def _unique_names(cls, servers: list[McpServerConfig]) -> list[McpServerConfig]:
        names = [server.name for server in servers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"MCP server names must be unique; repeated: {', '.join(duplicates)}")
        return servers


class PersonasConfig(Section):
    """The ``[personas]`` section: folders whose persona files the server publishes (as ``--persona-dir``)."""

    dirs: list[Path] = []


class Config(BaseModel):
    """The whole file. Each part of the assistant reads its own section."""

    model_config = ConfigDict(extra="allow")

    tools: ToolsConfig = ToolsConfig()
    personas: PersonasConfig = PersonasConfig()
    path: Path | None = Field(default=None, exclude=True)


def default_config_path() -> Path:
    """Where the config file lives when neither ``--config`` nor ``$ASSISTANT_CONFIG`` says."""
    return Path(platformdirs.user_config_dir("assistant")) / CONFIG_FILE


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PATH",
        help=f"TOML config file (default: ${CONFIG_ENV}, else {default_config_path()} if it exists)",
    )


def _expand(value: str, environ: Mapping[str, str], where: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(f"{where} uses ${{{name}}}, which is not set in the environment")
        return environ[name]

    return _VARIABLE.sub(substitute, value)


def _resolve(config: Config, folder: Path, environ: Mapping[str, str]) -> Config:
    """Make relative paths relative to the file's folder and fill in ``${VAR}``s."""
    tools = config.tools
    modules = [
        str((folder / module).resolve()) if module.endswith(".py") or "/" in module else module
        for module in tools.modules
    ]
    servers = []
    for index, server in enumerate(tools.mcp):
        where = f"tools.mcp[{index}] ({server.name})"
        servers.append(
            server.model_copy(
                update={
                    "env": {k: _expand(v, environ, f"{where}.env.{k}") for k, v in server.env.items()},
                    "headers": {k: _expand(v, environ, f"{where}.headers.{k}") for k, v in server.headers.items()},
                    "cwd": (folder / server.cwd) if server.cwd is not None else None,
                }
            )
        )
    persona_dirs = [folder / path.expanduser() for path in config.personas.dirs]
    personas = config.personas.model_copy(update={"dirs": persona_dirs})
    return config.model_copy(
        update={"tools": tools.model_copy(update={"modules": modules, "mcp": servers}), "personas": personas}
    )


def parse_config(text: str, path: Path | None = None, environ: Mapping[str, str] = os.environ) -> Config:
    """A ``Config`` from TOML text; ``ConfigError`` naming the file and key when it is wrong."""
    label = str(path) if path is not None else "config"
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'top level'}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"{label}: {problems}") from None
    folder = path.parent if path is not None else Path.cwd()
    try:
        resolved = _resolve(config, folder, environ)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    return resolved.model_copy(update={"path": path})


def load_config(path: Path | None = None, environ: Mapping[str, str] = os.environ) -> Config:
    """The config from ``path``, else ``$ASSISTANT_CONFIG``, else the default file; defaults if none exists.

    A file named explicitly (option or variable) must exist; the default
    location is optional.
    """
    explicit = path or (Path(environ[CONFIG_ENV]) if environ.get(CONFIG_ENV) else None)
    chosen = (explicit or default_config_path()).expanduser()
    if not chosen.is_file():
        if explicit is not None:
            raise ConfigError(f"config file {chosen} does not exist")
        return Config()
    try:
        text = chosen.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {chosen}: {exc}") from None
    return parse_config(text, chosen.resolve(), environ)
