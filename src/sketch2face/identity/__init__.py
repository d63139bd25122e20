"""Identity: dlib's face recogniser read into PyTorch (pure Python), its face chips and an embedder.

- ``dlib_format``: reader for dlib's serialised DNN files (layers in forward order).
- ``dlib_resnet``: ``DlibFaceResNet`` + ``load_dlib_face_resnet`` (converted once, cached).
- ``chips``: ``chip_transform`` (= dlib.get_face_chip geometry), differentiable ``warp_chips``,
  ``detect_landmarks5``.
- ``embedder``: ``FaceEmbedder.embed_u8`` for evaluation and data preparation.
"""

from sketch2face.identity.chips import (
    CHIP_PADDING,
    CHIP_SIZE,
    ChipDetails,
    chip_transform,
    detect_landmarks5,
    face_chip_details,
    warp_chips,
)
from sketch2face.identity.dlib_format import DlibLayer, DlibNetwork, read_dlib_network
from sketch2face.identity.dlib_resnet import EMBEDDING_DIM, DlibFaceResNet, load_dlib_face_resnet
from sketch2face.identity.embedder import FaceEmbedder

__all__ = [
    "CHIP_PADDING",
    "CHIP_SIZE",
    "EMBEDDING_DIM",
    "ChipDetails",
    "DlibFaceResNet",
    "DlibLayer",
    "DlibNetwork",
    "FaceEmbedder",
    "chip_transform",
    "detect_landmarks5",
    "face_chip_details",
    "load_dlib_face_resnet",
    "read_dlib_network",
    "warp_chips",
]
