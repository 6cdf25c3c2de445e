"""Local analysers, each optional, each with a model that a package carries (or none at all).

The modules import their heavy dependencies (rapidocr, torch, transformers)
only when an analyser loads, so importing this package is cheap.
"""

from vision.analysers.base import Analyser, AnalyserUnavailable, Finding

__all__ = ["Analyser", "AnalyserUnavailable", "Finding"]
