"""Camera and screen frames in, and local analysers that describe them."""
