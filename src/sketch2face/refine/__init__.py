"""Optional face refinement (GFPGAN) behind the ``Refiner`` protocol.

``gfpgan`` is imported lazily by callers that need it (spandrel is the optional 'refine' extra).
"""

from sketch2face.refine.base import NoRefiner, Refiner, RefineResult, upscale_bicubic

__all__ = ["NoRefiner", "RefineResult", "Refiner", "upscale_bicubic"]
