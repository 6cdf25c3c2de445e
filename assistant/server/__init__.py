"""The websocket edge: ``LiveServer`` serves the Live protocol and the browser client."""

from assistant.server.app import DEFAULT_LIVE_PATH, LiveServer, ServerConfig, WebSocketTransport

__all__ = ["DEFAULT_LIVE_PATH", "LiveServer", "ServerConfig", "WebSocketTransport"]
