"""Clients of the Live server: the browser page (``client/web``) and the terminal app."""
