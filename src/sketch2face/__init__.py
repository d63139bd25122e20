"""sketch2face: turn facial sketches into photo-realistic faces (Pix2pix + optional GFPGAN)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
