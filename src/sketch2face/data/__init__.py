"""Data preparation and loading: sketchify, face crop, sources, manifest, dataset, prepare.

Submodules are imported on demand (``from sketch2face.data.preprocess import prepare_sketch``) so
importing the package stays light; dlib is loaded only when a :class:`FaceCropper` is created.
"""
