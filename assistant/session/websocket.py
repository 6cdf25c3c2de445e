"""Writing one websocket frame at once, or saying that it would have to wait.

A session relays fifty 20 ms chunks a second each way, and each would hop
from the task that read it, through a queue, to a writer task that awaits
websockets' ``send``. When nothing is queued and the socket's write buffer
is under its limit, ``send`` would finish without waiting, so the reader
may write the frame itself (``write_now``), sparing a task switch and
``send``'s async context per message. Every other case answers False and
the caller queues the frame for its writer, which waits as ``send`` does:
order, bounds and back-pressure stay the queue's.

This reads websockets' asyncio connection below its ``send``: its sans-I/O
``protocol``, the flow-control flag ``paused`` that ``drain`` waits on and
``send_data``, as they are in websockets 17 (the project pins below 18).
"""

from __future__ import annotations

from websockets.asyncio.connection import Connection
from websockets.protocol import State


def write_now(connection: Connection, data: bytes) -> bool:
    """Write ``data`` as one binary frame if ``send`` would not wait; False (nothing written) otherwise.

    Not while the connection is anything but open (``send`` then raises the
    close), while its socket is closing or its write buffer is over the
    limit (``send`` would wait), or while a fragmented message is being sent.
    """
    if (
        connection.paused
        or connection.send_in_progress is not None
        or connection.protocol.state is not State.OPEN
        or connection.transport.is_closing()
    ):
        return False
    connection.protocol.send_binary(data)
    connection.send_data()
    return True
