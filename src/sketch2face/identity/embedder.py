"""``FaceEmbedder``: uint8 photos -> dlib 128-D descriptors with the PyTorch port (batched, GPU-able)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from sketch2face.identity.chips import CHIP_SIZE, chip_transform, detect_landmarks5, warp_chips
from sketch2face.identity.dlib_resnet import EMBEDDING_DIM, DlibFaceResNet, load_dlib_face_resnet


class FaceEmbedder:
    """dlib face descriptors: 5-point landmarks -> 150 px chip -> ``DlibFaceResNet``.

    Equal to ``dlib.face_recognition_model_v1.compute_face_descriptor(image, shape)`` to float
    rounding, but batched and on any torch device.
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        *,
        batch_size: int = 32,
        model: DlibFaceResNet | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.model = model if model is not None else load_dlib_face_resnet(self.device)

    @torch.no_grad()
    def embed_u8(
        self,
        images_u8: Sequence[np.ndarray] | np.ndarray,
        landmarks: Sequence[np.ndarray | None] | np.ndarray | None = None,
    ) -> np.ndarray:
        """(N, 128) float32 descriptors of HxWx3 uint8 RGB images; a NaN row where no face was found.

        ``landmarks``: (5, 2) dlib landmarks per image (None entries: no face); detected with
        dlib's HOG detector when not given. ``np.isnan(result[:, 0])`` is the no-face mask.
        """
        if landmarks is not None and len(landmarks) != len(images_u8):
            raise ValueError(f"{len(landmarks)} landmark sets for {len(images_u8)} images")
        out = np.full((len(images_u8), EMBEDDING_DIM), np.nan, dtype=np.float32)
        found: list[int] = []
        chips: list[torch.Tensor] = []
        for i, image_u8 in enumerate(images_u8):
            points = detect_landmarks5(image_u8) if landmarks is None else landmarks[i]
            if points is None:
                continue
            image_t = torch.tensor(image_u8, device=self.device)  # copies: inputs may be read-only
            image_t = image_t.permute(2, 0, 1)[None].float()  # (1, 3, H, W) in [0, 255]
            matrix = torch.from_numpy(chip_transform(np.asarray(points)))[None]
            # dlib truncates its chip to uint8; flooring makes our chip equal to dlib's.
            chips.append(warp_chips(image_t, matrix, CHIP_SIZE).floor())
            found.append(i)
        for start in range(0, len(chips), self.batch_size):
            batch = torch.cat(chips[start : start + self.batch_size])  # (B, 3, 150, 150)
            out[found[start : start + self.batch_size]] = self.model(batch).float().cpu().numpy()
        return out
