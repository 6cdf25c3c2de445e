"""Benchmarks that print figures: ``assistant bench <what>``.

Each benchmark drives the real stack the way a user would (spoken prompts
made at run time, sent in real time over a real websocket) and reports
what it measured as a table and, with ``--json``, a file.
"""
