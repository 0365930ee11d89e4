"""The OCR engines behind :class:`~anonlib.pixels.Detector`, each in its own module and imported
only when first asked for (an engine's import loads native libraries and models)."""
