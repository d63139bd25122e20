"""The second stage, behind the ``Refiner`` protocol: the project's own refiner (``own``, the
default, shipped in ``assets/refiner/``) or GFPGAN (``gfpgan``, optional weights); ``resolve``
picks which one runs. Also here: ``degrade`` (the refiner's training inputs) and ``backdrop`` (a
plain studio backdrop).

The submodules are imported lazily by callers that need them (torch, onnxruntime; spandrel is the
optional 'refine' extra for GFPGAN).
"""

from sketch2face.refine.base import NoRefiner, Refiner, RefineResult, upscale_bicubic

__all__ = ["NoRefiner", "RefineResult", "Refiner", "upscale_bicubic"]
