"""The terminal desktop client behind ``assistant talk``.

A Live protocol client (``live``) that speaks the same JSON frames to an
in-process session or to a server over a websocket, the sound devices or WAV
files at its edges (``audio``), and a terminal UI (``ui``). ``app.TalkApp``
ties them together.
"""
