"""A real-time multimodal voice assistant that speaks the Gemini Live protocol."""

__version__ = "0.1.0"
