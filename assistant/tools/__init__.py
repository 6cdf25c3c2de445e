"""Server-side tools: typed Python functions and MCP servers the model can call.

    from assistant.tools import tool, ToolError

    @tool
    def get_weather(city: str) -> dict:
        '''Today's weather for a city.

        Args:
            city: The city, e.g. "Lisbon".
        '''

A plugin package lists its tools under the ``assistant.tools`` entry-point
group; ``assistant serve`` and ``assistant tools`` find them, with the
built-ins, modules named with ``--tools`` or in the config file, and the
tools of MCP servers in the config file. See docs/plugins.md.
"""

from assistant.tools.base import DEFAULT_TIMEOUT_S, BaseTool, CallContext, ToolCancelled, ToolError, ToolSpec
from assistant.tools.decorator import FunctionTool, RawTool, raw_tool, tool
from assistant.tools.registry import PluginProblem, RegisteredTool, ToolRegistry
from assistant.tools.schema import SchemaError

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "BaseTool",
    "CallContext",
    "FunctionTool",
    "PluginProblem",
    "RawTool",
    "RegisteredTool",
    "SchemaError",
    "ToolCancelled",
    "ToolError",
    "ToolRegistry",
    "ToolSpec",
    "raw_tool",
    "tool",
]
