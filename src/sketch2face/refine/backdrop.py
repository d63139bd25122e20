"""A plain studio backdrop behind a generated face (the usual look of a police likeness).

Stage one paints smeared rainbow backgrounds and faint frame lines at the image border. When that
background cannot be made clean, :func:`studio_backdrop` keeps the head (face, hair, ears, neck and
shoulders) and puts it, with a feathered edge, on a plain, slightly graduated light grey-blue
backdrop like a passport or police photo.

The head mask comes from three cues, best first:

1. **the sketch** (aligned to the face pixel for pixel): what its strokes enclose, counting
   clothing under drawn shoulder lines and a hat or hair cut by the top of the frame; where the
   drawn outline has a gap, the convex hull of the drawn skull.
2. **dlib's 68 landmarks** on the face: the face itself (jaw line up to the forehead, and the
   neck) is always kept, so a gap in the drawn outline can never cut the face out; without a
   usable sketch the head is the jaw line widened for ears and hair, extended up for the skull
   and down into a neck and shoulders.
3. **the aligned template** (where every prepared face sits, see ``sketch2face.data.align``) in
   place of the landmarks when dlib finds no face.

Numpy/OpenCV (+ dlib for the landmarks), deterministic, about 12-20 ms per 256 face on one core.
``scripts/backdrop_sheet.py`` draws a sheet of examples (``docs/images/studio_backdrop_sheet.jpg``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from sketch2face.data.align import CENTER_SHIFT_UP, FACE_FRACTION

#: Default backdrop tone behind the head: a light, cool grey (passport / police photo backdrop).
STUDIO_RGB: tuple[int, int, int] = (200, 206, 213)
#: Default darkening of the backdrop toward the farthest corner (fraction of the tone).
STUDIO_GRADIENT = 0.10
#: Default width (px at 256) of the soft transition from head to backdrop.
FEATHER_PX = 5.0
#: Default width (px at 256) of the image border rebuilt from inside (stage one's frame lines).
BORDER_PX = 6

#: Ink: sketch pixels darker than this. Prepared sketches have pure white paper
#: (``normalize_sketch``), so even faint strokes count.
_INK_LEVEL = 240
#: Stroke gaps up to about twice this (px at 256) are bridged when finding the enclosed region.
_SEAL_PX = 5
#: The enclosed view leaks (the outline has a gap) when it covers less of the face core above
#: mid-nose than this.
_LEAK_COVER = 0.9
#: Connected ink smaller than this (px at 256) is a smudge, not a stroke, for the skull hull.
_MIN_STROKE_PX = 40
#: Below the mouth, strokes ending this close (px at 256) to a side edge are carried on to it.
_EDGE_REACH_PX = 24
#: Clothing shut in under such a carried-on shoulder line is at least twice this wide (px at 256).
_MIN_BODY_HALF_WIDTH_PX = 10.0
#: Paper touching the side edges only below this fraction of the height, or only the bottom edge,
#: lies under a drawn shoulder line: clothing, kept with the head.
_SHOULDER_LEVEL = 0.62
#: A sketch mask covering less / more of the frame than this is no head (blank or tiny drawing /
#: a photo-sketch whose cluttered background encloses everything): the sketch is not used ...
_MIN_SKETCH_AREA = 0.12
_MAX_SKETCH_AREA = 0.85
#: ... nor when both of its top corners are inked more than this (a cluttered photo-sketch) ...
_MAX_CORNER_INK = 0.1
#: ... nor when it covers less than this fraction of the face core (it is not this face).
_MIN_CORE_COVER = 0.45
#: When the drawing below the chin covers less than this fraction of a generic bust, it shows no
#: shoulders: the bust is added (a head on a stick of neck looks cut out).
_MIN_BODY_COVER = 0.5
#: The head (ears, hair) is this much wider than dlib's jaw line (points 0..16); FS2K mean.
_EAR_HAIR_WIDEN = 1.3
#: Skull and hair reach this many brow-to-chin heights above the brows; FS2K mean.
_SKULL_RISE = 0.75
#: Landmark heights in dlib's face box of an aligned image (0 top, 1 bottom), measured on FS2K:
#: brows (points 17-26), jaw ends (0, 16), mid-nose (29), chin (8); jaw half-width in box widths.
_TEMPLATE_BROW, _TEMPLATE_JAW_END, _TEMPLATE_MID_NOSE, _TEMPLATE_CHIN = 0.14, 0.25, 0.41, 1.03
_TEMPLATE_JAW_HALF_WIDTH = 0.48


#: The backdrop choices every entry point offers: ``"photo"`` keeps the background the networks
#: painted; ``"studio"`` puts the head on the plain studio backdrop (:func:`studio_backdrop`), the
#: usual look of a police likeness and the one for appeal sheets.
BACKDROPS: tuple[str, ...] = ("photo", "studio")
#: The default backdrop: the networks' own background.
DEFAULT_BACKDROP = "photo"


def check_backdrop(value: object) -> str:
    """``value`` when it is one of :data:`BACKDROPS`; else a ValueError that names the choices."""
    if not isinstance(value, str) or value not in BACKDROPS:
        raise ValueError(
            f"backdrop must be one of {', '.join(repr(b) for b in BACKDROPS)}, got {value!r}"
        )
    return value


def on_backdrop(
    face_u8: np.ndarray, sketch_u8: np.ndarray | None, backdrop: str
) -> np.ndarray | None:
    """The face shown to the user on ``backdrop``: what ``Sketch2Face`` calls last, so every
    entry point (``generate``, the model server, the web app's model client) gets it from there.

    ``"photo"``: None (the face is shown as the networks made it). ``"studio"``:
    :func:`studio_backdrop` of ``face_u8`` (THE face: the refined one when there is one, else
    stage one's) with ``sketch_u8``, the prepared sketch the generator saw. ValueError for an
    unknown ``backdrop``.
    """
    if check_backdrop(backdrop) == "photo":
        return None
    return studio_backdrop(face_u8, sketch_u8)


@dataclass(frozen=True)
class HeadMask:
    """Where the head is, and which cues found it.

    Attributes:
        mask: HxW bool, True on the head (face, hair, ears, neck, kept clothing); hard-edged.
        source: ``"sketch+landmarks"``, ``"sketch+template"``, ``"landmarks"`` or ``"template"``.
        landmarks68: (68, 2) float32 dlib points (x, y) on the face, or None when not found/used.
    """

    mask: np.ndarray
    source: str
    landmarks68: np.ndarray | None


def studio_backdrop(
    face_u8: np.ndarray,
    sketch_u8: np.ndarray | None = None,
    *,
    colour: tuple[int, int, int] = STUDIO_RGB,
    gradient: float = STUDIO_GRADIENT,
    feather_px: float = FEATHER_PX,
    border_px: int = BORDER_PX,
    detect_landmarks: bool = True,
    landmarks68: np.ndarray | None = None,
) -> np.ndarray:
    """Put the head of a generated face on a plain studio backdrop.

    Contract:

    - ``face_u8``: HxWx3 uint8 RGB, square (at least 64 px), aligned like the project's prepared
      images: the 256x256 output of stage one, or a refiner's larger output of it (the cues are
      scaled to the size).
    - ``sketch_u8``: optional, the prepared sketch the face was generated from (HxW, HxWx1 or
      HxWx3 uint8, white paper, dark strokes, square; resized to the face's size). It must lie on
      the face's pixel grid, i.e. be the ``prepare_sketch`` output the generator saw. Strongly
      recommended: it gives the hair and shoulder outline.
    - Returns a new HxWx3 uint8 RGB array of the same shape; the inputs are not modified. Deep
      inside the head (farther than about ``feather_px`` from its edge) the pixels are exactly the
      face's; away from it they are exactly ``backdrop(H, W, colour, gradient)``; between, a
      smooth blend (half and half on the mask's edge, see :func:`feather_mask`). The outermost
      ``border_px`` pixels of the face are rebuilt from just inside them first, so frame lines
      at the border vanish also where the head reaches the edge (shoulders, long hair).
    - Never fails on a valid image: a blank, tiny or cluttered sketch, or a face dlib cannot find,
      falls back to the next cue (see :func:`head_mask`; call it to learn which cue was used).
    - Deterministic, no network, thread-safe; about 15-25 ms for a 256 face on one CPU core, two
      thirds of it dlib (its detector and 68-point model load once per process, ~1 s).
    - Apply it last, to the image the user gets (after any refiner: refiners keep the geometry,
      so the sketch still lines up once resized, and might otherwise repaint the background).

    Args:
        face_u8: the generated (or refined) face.
        sketch_u8: the prepared sketch it was generated from, or None.
        colour: backdrop RGB behind the head (the brightest part, above the image centre).
        gradient: how much darker (fraction, 0..0.5) the backdrop gets toward the farthest corner.
        feather_px: width of the soft edge, in pixels of a 256 image (scaled with the size).
        border_px: border width rebuilt against frame lines, in pixels of a 256 image (0: off).
        detect_landmarks: run dlib's face detector and 68-point model on the face (~8 ms).
        landmarks68: (68, 2) dlib points (x, y) on the face, when the caller already has them.

    Raises:
        ValueError: wrong shape/dtype of ``face_u8``, ``sketch_u8`` or ``landmarks68``, or a
            parameter out of range.
    """
    face_u8 = _check_face(face_u8)
    _check_params(colour, gradient, feather_px, border_px)
    size = face_u8.shape[0]
    scale = size / 256.0
    found = head_mask(
        face_u8, sketch_u8, detect_landmarks=detect_landmarks, landmarks68=landmarks68
    )
    alpha = feather_mask(found.mask, feather_px * scale)
    cleaned = remove_border_lines(face_u8, round(border_px * scale))
    rgb = (int(colour[0]), int(colour[1]), int(colour[2]))
    return composite(cleaned, _backdrop(size, size, rgb, float(gradient)), alpha)


def head_mask(
    face_u8: np.ndarray,
    sketch_u8: np.ndarray | None = None,
    *,
    detect_landmarks: bool = True,
    landmarks68: np.ndarray | None = None,
) -> HeadMask:
    """The hard head mask of an aligned face (inputs as for :func:`studio_backdrop`).

    The sketch mask (:func:`sketch_head_mask`) is used when plausible: 12-85% of the frame, top
    corners not both inked, and covering at least 45% of the face core. The face core (face and neck, from the landmarks or
    the template) is always added to it, and a generic bust when the drawing shows no shoulders.
    Without a usable sketch the head is built from the landmarks (:func:`landmark_head_mask`),
    or, when dlib finds no face where an aligned face should be, from the template
    (:func:`template_head_mask`).
    """
    face_u8 = _check_face(face_u8)
    size = face_u8.shape[0]
    points = None
    if landmarks68 is not None:
        points = np.asarray(landmarks68, np.float32)
        if points.shape != (68, 2) or not np.isfinite(points).all():
            raise ValueError(f"landmarks68 must be a finite (68, 2) array, got {points.shape}")
    elif detect_landmarks:
        points = _plausible(_find_points68(face_u8), size)
    face = _Face.from_landmarks(points) if points is not None else _Face.template(size)
    core = face.core_mask(size)
    sketch_mask = None
    if sketch_u8 is not None:
        sketch_mask = _sketch_mask(_check_sketch(sketch_u8, size), face)
        if sketch_mask is not None and _cover(sketch_mask, core) < _MIN_CORE_COVER:
            sketch_mask = None
    if sketch_mask is not None:
        mask = sketch_mask | core
        bust = face.bust_mask(size)
        below = max(0, min(size, round(face.chin_y + 0.15 * face.height)))
        if _cover(sketch_mask[below:], bust[below:]) < _MIN_BODY_COVER:
            mask |= bust
        mask = _fill_holes(mask)
        source = "sketch+landmarks" if points is not None else "sketch+template"
    else:
        mask = face.head_mask(size)
        source = "landmarks" if points is not None else "template"
    return HeadMask(mask, source, points)


# --- the sketch cue ----------------------------------------------------------------------------


def sketch_head_mask(
    sketch_u8: np.ndarray, *, landmarks68: np.ndarray | None = None
) -> np.ndarray | None:
    """HxW bool region a prepared sketch draws (head, hair, neck, clothing), or None when the
    sketch shows no usable head.

    - *enclosed*: strokes are sealed (gaps up to ~10 px at 256 bridged) and the paper split into
      regions; a region reached from the top edge (beside the crown) or the side edges above
      the shoulders is background; the rest (strokes, what they enclose, clothing under a
      shoulder line open to the bottom edge, a hat cut by the top edge) is kept. Below the mouth,
      strokes that stop short of a side edge (shoulder lines) are carried on to it.
    - *skull*, only when the enclosed view leaks into the face (its outline was drawn faintly or
      with a wide gap): the skull is convex, so the convex hull of the strokes above mid-nose
      near the head closes it. (Always adding it would also swallow the paper between hair and
      ears.)

    Mid-nose, chin and jaw come from ``landmarks68`` (dlib points on the face) when given, else
    from the aligned template. Thin stray strokes are opened away, the largest part kept and its
    holes filled. None when the result covers too little of the frame (a blank or tiny sketch) or
    nearly all of it, or when both top corners are inked (a photo-sketch of a cluttered scene).
    """
    size = np.asarray(sketch_u8).shape[0]
    gray = _check_sketch(sketch_u8, size)
    if landmarks68 is None:
        face = _Face.template(size)
    else:
        face = _Face.from_landmarks(np.asarray(landmarks68, np.float32))
    return _sketch_mask(gray, face)


def _sketch_mask(gray: np.ndarray, face: _Face) -> np.ndarray | None:
    size = gray.shape[0]
    scale = size / 256.0
    ink = (gray < _INK_LEVEL).astype(np.uint8)
    # Artist sketches leave the top corners blank (1% of FS2K have ink on more than a tenth of
    # both); photo-sketches of busy scenes fill them (a third of CelebA ones): those would
    # enclose the whole frame.
    edge = max(2, round(3 * scale))
    c = round(48 * scale)
    if min(ink[edge:c, edge:c].mean(), ink[edge:c, -c:-edge].mean()) > _MAX_CORNER_INK:
        return None
    # Scanned pages and photo-sketches often carry a frame or page edge along the border: it
    # would enclose everything, so the outermost pixels never count as ink (except above the
    # crown, where a hat or tall hair cut by the frame closes its outline).
    crown = face.crown_columns(size)
    ink[:edge, : crown[0]] = 0
    ink[:edge, crown[1] :] = 0
    ink[-edge:] = 0
    ink[:, :edge] = 0
    ink[:, -edge:] = 0
    ink = _drop_specks(ink, round(12 * scale * scale))
    if ink.sum() < 0.01 * size * size:
        return None
    seal = _disk(round(_SEAL_PX * scale))
    sealed = cv2.dilate(ink, seal)
    drawing = (~_background(ink, sealed, face, scale)).astype(np.uint8)
    # A faint or gappy outline lets the background into the face: then (only then, the hull
    # would also swallow the paper between hair and ears) the skull's convex hull closes it.
    core = face.core_mask(size)
    upper = int(np.clip(round(face.mid_nose_y), 0, size))
    if _cover(drawing[:upper] > 0, core[:upper]) < _LEAK_COVER:
        main = _largest_component(sealed)  # the drawing without specks and detached marks
        if main is not None:
            # Smudges and stray marks would stretch the hull into a box: only strokes near the
            # head count.
            strokes = main & _drop_specks(ink, round(_MIN_STROKE_PX * scale * scale)).astype(bool)
            _add_skull_hull(drawing, strokes & face.envelope_mask(size), face.mid_nose_y)
    # Lone strokes poking into the background (a stray line, a collar tip) are thinner than this.
    drawing = cv2.morphologyEx(drawing, cv2.MORPH_OPEN, _disk(round(4 * scale)))
    largest = _largest_component(drawing)
    if largest is None:
        return None
    mask = _fill_holes(largest)
    if not _MIN_SKETCH_AREA <= mask.mean() <= _MAX_SKETCH_AREA:
        return None
    return mask


def _background(ink: np.ndarray, sealed: np.ndarray, face: _Face, scale: float) -> np.ndarray:
    """HxW bool: the paper outside the drawing (the *enclosed* view's complement)."""
    size = ink.shape[0]
    # Shoulder lines often stop short of the frame edge, which lets the background flow in
    # under them: below the mouth, a stroke ending near a side edge is carried on to it.
    walls = sealed.copy()
    reach = round(_EDGE_REACH_PX * scale)
    low = int(np.clip(round((face.mid_nose_y + face.chin_y) / 2.0), 0, size))  # ~ the mouth
    left_band = ink[low:, :reach]
    for y in np.nonzero(left_band.any(axis=1))[0]:
        walls[low + y, : int(np.argmax(left_band[y]))] = 1  # edge up to the nearest stroke
    right_band = ink[low:, size - reach :][:, ::-1]
    for y in np.nonzero(right_band.any(axis=1))[0]:
        walls[low + y, size - int(np.argmax(right_band[y])) :] = 1
    crown = face.crown_columns(size)
    outside = _reached_from_edges(walls == 0, crown)
    # A region shut in only by carried-on strokes stays background when it is narrow (the strip
    # between hanging hair and the edge); clothing under a shoulder line is wide.
    shut_in = (_reached_from_edges(sealed == 0, crown) & ~outside & (walls == 0)).astype(np.uint8)
    if shut_in.any():
        count, labels = cv2.connectedComponents(shut_in, connectivity=4)
        # (padded: the frame edge bounds a region as much as a stroke does)
        depth = cv2.distanceTransform(
            cv2.copyMakeBorder(shut_in, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0), cv2.DIST_L2, 3
        )[1:-1, 1:-1]
        widest = np.zeros(count, np.float32)
        np.maximum.at(widest, labels.ravel(), depth.ravel())
        outside |= (widest < _MIN_BODY_HALF_WIDTH_PX * scale)[labels] & (shut_in > 0)
    # The carried-on strokes themselves are background where they touch it (the bridged gap).
    open_paper = (outside | ((walls > 0) & (sealed == 0))).astype(np.uint8)
    _, labels = cv2.connectedComponents(open_paper, connectivity=4)
    reached = np.unique(labels[outside])
    outside = np.isin(labels, reached[reached > 0])
    # Give the background back what the sealing took from it, up to the strokes themselves.
    return (cv2.dilate(outside.astype(np.uint8), _disk(round(_SEAL_PX * scale))) > 0) & (ink == 0)


def _add_skull_hull(drawing: np.ndarray, strokes: np.ndarray, mid_nose_y: float) -> None:
    """Fill the convex hull of the ``strokes`` above ``mid_nose_y`` into ``drawing``."""
    limit = int(np.clip(round(mid_nose_y), 0, drawing.shape[0]))
    ys, xs = np.nonzero(strokes[:limit])
    if len(xs) >= 3:
        hull = cv2.convexHull(np.stack([xs, ys], axis=1).astype(np.int32))
        cv2.fillPoly(drawing, [hull[:, 0]], 1)


# --- the landmark and template cues ------------------------------------------------------------


@dataclass(frozen=True)
class _Face:
    """Where the face lies in the frame: dlib's jaw line (17 points) and three heights."""

    jaw: np.ndarray  # (17, 2) float32, dlib points 0..16 (image-left ear to image-right ear)
    brow_y: float
    mid_nose_y: float
    chin_y: float

    @classmethod
    def from_landmarks(cls, points68: np.ndarray) -> _Face:
        return cls(
            jaw=np.asarray(points68[0:17], np.float32),
            brow_y=float(points68[17:27, 1].mean()),
            mid_nose_y=float(points68[29, 1]),
            chin_y=float(points68[8, 1]),
        )

    @classmethod
    def template(cls, size: int) -> _Face:
        """The average face of an aligned image (FS2K means in dlib's box, see ``data.align``)."""
        left, top, right, bottom = _template_face_box(size)
        box_w, box_h = right - left, bottom - top
        cx = (left + right) / 2.0
        jaw_end_y = top + _TEMPLATE_JAW_END * box_h
        chin_y = top + _TEMPLATE_CHIN * box_h
        t = np.linspace(0.0, np.pi, 17)
        jaw = np.stack(
            [
                cx - _TEMPLATE_JAW_HALF_WIDTH * box_w * np.cos(t),
                jaw_end_y + (chin_y - jaw_end_y) * np.sin(t) ** 1.3,
            ],
            axis=1,
        ).astype(np.float32)
        return cls(
            jaw=jaw,
            brow_y=top + _TEMPLATE_BROW * box_h,
            mid_nose_y=top + _TEMPLATE_MID_NOSE * box_h,
            chin_y=chin_y,
        )

    @property
    def height(self) -> float:
        """Brow to chin."""
        return self.chin_y - self.brow_y

    @property
    def width(self) -> float:
        """Jaw end to jaw end (dlib points 0 and 16)."""
        return float(np.linalg.norm(self.jaw[16] - self.jaw[0]))

    @property
    def centre(self) -> np.ndarray:
        """Midpoint of the jaw ends (about eye height)."""
        return (self.jaw[0] + self.jaw[16]) / 2.0

    def core_mask(self, size: int) -> np.ndarray:
        """HxW bool: the face itself (jaw line up to about the hairline) and the neck below it."""
        forehead_y = self.brow_y - 0.45 * self.height
        # Up to about the hairline (a third of the face above the brows; brow to chin is two
        # thirds), rounded like the skull so the core never pokes out of a bald head.
        cx, cy = self.centre
        forehead = cv2.ellipse2Poly(
            (round(float(cx)), round(float(cy))),
            (max(1, round(self.width / 2.0)), max(1, round(float(cy) - forehead_y))),
            0,
            180,
            360,
            15,
        ).astype(np.float32)
        mask = _fill_polygon(cv2.convexHull(np.concatenate([self.jaw, forehead]))[:, 0], size)
        # The neck, straight down from the jaw below the mouth corners.
        left, right = float(self.jaw[5, 0]), float(self.jaw[11, 0])
        inset = 0.12 * (right - left)
        neck = np.array(
            [
                [left + inset, self.jaw[5, 1]],
                [right - inset, self.jaw[11, 1]],
                [right - inset, size + 1.0],
                [left + inset, size + 1.0],
            ],
            np.float32,
        )
        return mask | _fill_polygon(neck, size)

    def bust_mask(self, size: int) -> np.ndarray:
        """HxW bool: a generic neck widening into shoulders below the chin."""
        cx = float(self.centre[0])
        w = self.width
        neck_half = 0.4 * w
        shoulder_y = self.chin_y + 0.12 * w  # where the neck widens into the shoulders
        outline = np.array(
            [
                [cx - neck_half, float(self.centre[1])],
                [cx + neck_half, float(self.centre[1])],
                [cx + neck_half, shoulder_y],
                [cx + 1.25 * w, shoulder_y + 0.3 * w],
                [cx + 1.25 * w, size + 1.0],
                [cx - 1.25 * w, size + 1.0],
                [cx - 1.25 * w, shoulder_y + 0.3 * w],
                [cx - neck_half, shoulder_y],
            ],
            np.float32,
        )
        return _fill_polygon(outline, size)

    def crown_columns(self, size: int) -> tuple[int, int]:
        """[start, stop) of the columns above the skull (the jaw's width)."""
        half = 0.5 * self.width
        cx = float(self.centre[0])
        return int(np.clip(round(cx - half), 0, size)), int(np.clip(round(cx + half), 0, size))

    def envelope_mask(self, size: int) -> np.ndarray:
        """HxW bool: a generous ellipse around the head; strokes outside it are not the head's."""
        cx = float(self.centre[0])
        top_y = self.brow_y - _SKULL_RISE * self.height
        half_h = 1.25 * (self.chin_y - top_y) / 2.0
        mask = np.zeros((size, size), np.uint8)
        cv2.ellipse(
            mask,
            (round(cx), round((top_y + self.chin_y) / 2.0)),
            (max(1, round(1.25 * _EAR_HAIR_WIDEN * self.width / 2.0)), max(1, round(half_h))),
            0,
            0,
            360,
            1,
            -1,
        )
        return mask.astype(bool)

    def head_mask(self, size: int) -> np.ndarray:
        """HxW bool: skull and hair (an upper half-ellipse), face and ears (hull with the jaw),
        neck and shoulders."""
        cx, mid_y = float(self.centre[0]), float(self.centre[1])
        top_y = self.brow_y - _SKULL_RISE * self.height
        arc = cv2.ellipse2Poly(
            (round(cx), round(mid_y)),
            (max(1, round(_EAR_HAIR_WIDEN * self.width / 2.0)), max(1, round(mid_y - top_y))),
            0,
            180,
            360,
            10,
        ).astype(np.float32)
        head = cv2.convexHull(np.concatenate([arc, self.jaw]))[:, 0]
        return _fill_polygon(head, size) | self.core_mask(size) | self.bust_mask(size)


def landmark_head_mask(points68: np.ndarray, size: int) -> np.ndarray:
    """HxW bool head (skull and hair, face, ears, neck, shoulders) estimated from 68 dlib points."""
    return _Face.from_landmarks(np.asarray(points68, np.float32)).head_mask(size)


def template_head_mask(size: int) -> np.ndarray:
    """HxW bool head of the average aligned face: the last-resort fallback."""
    return _Face.template(size).head_mask(size)


def _template_face_box(size: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of dlib's face box in an aligned image (see ``data.align``)."""
    face = FACE_FRACTION * size
    cx = size / 2.0
    cy = size / 2.0 + CENTER_SHIFT_UP * face
    return cx - face / 2.0, cy - face / 2.0, cx + face / 2.0, cy + face / 2.0


def _plausible(points: np.ndarray | None, size: int) -> np.ndarray | None:
    """Landmarks of the aligned face, or None when dlib found something else (wrong place/size)."""
    if points is None:
        return None
    left, top, right, bottom = _template_face_box(size)
    box_w = right - left
    width = float(points[:, 0].max() - points[:, 0].min())
    expected = np.array([(left + right) / 2.0, (top + bottom) / 2.0])
    if not 0.6 * box_w <= width <= 1.5 * box_w:
        return None
    if float(np.abs(points.mean(axis=0) - expected).max()) > 0.3 * box_w:
        return None
    return points


def _find_points68(face_u8: np.ndarray) -> np.ndarray | None:
    """(68, 2) float32 points of the largest face, or None (the process-wide dlib landmarker)."""
    from sketch2face.refine.gfpgan import default_landmarker

    # An aligned face is half the frame: a 256 copy is plenty and keeps detection ~6 ms.
    scale = 256.0 / face_u8.shape[0]
    work = (
        face_u8
        if face_u8.shape[0] == 256
        else cv2.resize(face_u8, (256, 256), interpolation=cv2.INTER_AREA)
    )
    points = default_landmarker().points68(np.ascontiguousarray(work), retry_upsampled=False)
    return None if points is None else points / scale


# --- backdrop, border and blending -------------------------------------------------------------

#: 4x4 ordered-dither offsets in [-0.5, 0.5): a smooth gradient without 8-bit banding, the same
#: pixels every call.
_BAYER4 = (
    np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]], np.float32) + 0.5
) / 16.0 - 0.5


def backdrop(
    height: int,
    width: int,
    colour: tuple[int, int, int] = STUDIO_RGB,
    gradient: float = STUDIO_GRADIENT,
) -> np.ndarray:
    """HxWx3 uint8 plain studio backdrop: ``colour`` behind the head (a little above the image
    centre), darkening smoothly and radially, like a lit studio wall, to ``(1 - gradient) *
    colour`` at the farthest corner (ordered dithering, no banding). A new array each call."""
    _check_params(colour, gradient, 0.0, 0)
    if height < 1 or width < 1:
        raise ValueError(f"backdrop size must be positive, got {height}x{width}")
    rgb = (int(colour[0]), int(colour[1]), int(colour[2]))
    return _backdrop(height, width, rgb, float(gradient)).copy()


@functools.lru_cache(maxsize=8)
def _backdrop(height: int, width: int, colour: tuple[int, int, int], gradient: float) -> np.ndarray:
    """:func:`backdrop`, cached (every face of a run shares one), read-only."""
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width
    dy = (ys - 0.42)[:, None]
    dx = (xs - 0.5)[None, :]
    dist2 = dx * dx + dy * dy
    shade = 1.0 - gradient * dist2 / dist2.max()
    tone = shade[:, :, None] * np.asarray(colour, np.float32)[None, None, :]
    dither = np.tile(_BAYER4, (height // 4 + 1, width // 4 + 1))[:height, :width, None]
    out = np.clip(np.floor(tone + 0.5 + dither), 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


def remove_border_lines(image_u8: np.ndarray, border_px: int) -> np.ndarray:
    """A copy with the outermost ``border_px`` pixels replaced by the pixels just inside them:
    frame lines at the very edge go, the interior is untouched."""
    if border_px <= 0:
        return image_u8.copy()
    b = border_px
    return cv2.copyMakeBorder(image_u8[b:-b, b:-b], b, b, b, b, cv2.BORDER_REFLECT_101)


def feather_mask(mask: np.ndarray, feather_px: float) -> np.ndarray:
    """HxW float32 alpha in [0, 1] from a hard mask: exactly 1 deep inside, exactly 0 far outside,
    a smooth ramp about ``feather_px`` wide on each side of the hard edge (0.5 on it)."""
    m = mask.astype(np.float32)
    if feather_px <= 0:
        return m
    # Centred on the edge: grown outward it keeps a halo of the old background around the hair,
    # shrunk it thins the hair.
    alpha = cv2.GaussianBlur(m, (0, 0), feather_px / 2.0, borderType=cv2.BORDER_REPLICATE)
    # Snap the numerical tails so the head is exactly the face and the rest exactly the backdrop.
    alpha[alpha > 0.995] = 1.0
    alpha[alpha < 0.005] = 0.0
    return alpha


def composite(face_u8: np.ndarray, backdrop_u8: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``alpha * face + (1 - alpha) * backdrop`` as uint8 (exact copies where alpha is 1 or 0)."""
    a = alpha[:, :, None]
    # Exact at alpha 1 and 0 as is: integers times 1.0 plus 0.0 stay integers in float32.
    mixed = face_u8.astype(np.float32) * a + backdrop_u8.astype(np.float32) * (1.0 - a)
    return (mixed + 0.5).clip(0, 255).astype(np.uint8)


# --- helpers -----------------------------------------------------------------------------------


def _check_face(face_u8: Any) -> np.ndarray:
    face = np.asarray(face_u8)
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(
            f"face_u8 must be an HxWx3 uint8 RGB image, got shape {face.shape} dtype {face.dtype}"
        )
    if face.shape[0] != face.shape[1] or face.shape[0] < 64:
        raise ValueError(
            f"face_u8 must be square and at least 64x64 (an aligned face), got {face.shape[:2]}"
        )
    return np.ascontiguousarray(face)


def _check_sketch(sketch_u8: Any, size: int) -> np.ndarray:
    """The sketch as a contiguous size x size gray uint8 array."""
    sketch = np.asarray(sketch_u8)
    if sketch.dtype != np.uint8 or not (
        sketch.ndim == 2 or (sketch.ndim == 3 and sketch.shape[2] in (1, 3))
    ):
        raise ValueError(
            "sketch_u8 must be an HxW, HxWx1 or HxWx3 uint8 image, got shape "
            f"{sketch.shape} dtype {sketch.dtype}"
        )
    if sketch.shape[0] != sketch.shape[1] or sketch.shape[0] < 16:
        raise ValueError(
            f"sketch_u8 must be square (on the face's pixel grid), got {sketch.shape[:2]}"
        )
    if sketch.ndim == 3:
        sketch = (
            sketch[:, :, 0]
            if sketch.shape[2] == 1
            else cv2.cvtColor(np.ascontiguousarray(sketch), cv2.COLOR_RGB2GRAY)
        )
    if sketch.shape[0] != size:
        interp = cv2.INTER_AREA if sketch.shape[0] > size else cv2.INTER_LINEAR
        sketch = cv2.resize(sketch, (size, size), interpolation=interp)
    return np.ascontiguousarray(sketch)


def _check_params(
    colour: tuple[int, int, int], gradient: float, feather_px: float, border_px: int
) -> None:
    values = np.asarray(colour)
    if values.shape != (3,) or not np.all((values >= 0) & (values <= 255)):
        raise ValueError(f"colour must be three values in 0..255 (RGB), got {colour!r}")
    if not 0.0 <= gradient <= 0.5:
        raise ValueError(f"gradient must be in [0, 0.5], got {gradient}")
    if not 0.0 <= feather_px <= 64.0:
        raise ValueError(f"feather_px must be in [0, 64], got {feather_px}")
    if not 0 <= border_px <= 32:
        raise ValueError(f"border_px must be in [0, 32], got {border_px}")


def _disk(radius: int) -> np.ndarray:
    radius = max(1, radius)
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _reached_from_edges(paper: np.ndarray, crown: tuple[int, int]) -> np.ndarray:
    """The ``paper`` regions touching the top edge (outside the ``crown`` columns) or the side
    edges above the shoulder level: the background. Regions touching only the bottom or the lower
    sides are clothing; regions touching the top only above the crown are a hat or tall hair cut
    by the frame."""
    size = paper.shape[0]
    _, labels = cv2.connectedComponents(paper.astype(np.uint8), connectivity=4)
    upper = round(_SHOULDER_LEVEL * size)
    top = np.concatenate([labels[0, : crown[0]], labels[0, crown[1] :]])
    seeds = np.unique(np.concatenate([top, labels[:upper, 0], labels[:upper, -1]]))
    return np.isin(labels, seeds[seeds > 0])


def _drop_specks(binary: np.ndarray, min_area: int) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    return keep[labels].astype(np.uint8)


def _largest_component(binary: np.ndarray) -> np.ndarray | None:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        binary.astype(np.uint8), connectivity=8
    )
    if count < 2:
        return None
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` with every region it encloses (not reachable from outside the frame) filled."""
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    flood_mask = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, flood_mask, (0, 0), 1)
    return mask.astype(bool) | (padded[1:-1, 1:-1] == 0)


def _fill_polygon(polygon: np.ndarray, size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    return mask.astype(bool)


def _cover(mask: np.ndarray, region: np.ndarray) -> float:
    """Fraction of ``region`` inside ``mask`` (1.0 for an empty region)."""
    total = int(region.sum())
    return float((mask & region).sum()) / total if total else 1.0
