"""Candidate faces for a witness to choose from, bred over rounds (EvoFIT-style).

A witness recognises a whole face far better than they recall its features. So instead of one face
per sketch, show an array of visibly different faces, let the witness pick the closest ones, and
breed the next array from those picks:

    from sketch2face.candidates import generate_candidates, next_round, render_candidates
    pipe = Sketch2Face.from_pretrained()
    first = generate_candidates(pipe, "sketch.png", n=6, fixed_attributes={"skin": "dark"})
    specs = next_round([first[1], first[4]], n=6)           # "more like these"
    second = render_candidates(pipe, "sketch.png", specs).candidates

What varies. The generator has two sources of variation: the witness attributes it is conditioned
on (skin tone, hair colour, gender: :mod:`sketch2face.attributes`) and the seed of its dropout
noise (``Sketch2Face.__call__(seed=...)``). A first round spreads every attribute the witness did
**not** fix over its scale (each candidate a different skin tone, hair colour, alternating
gender) and gives every candidate its own seed; attributes the witness fixed stay exactly as given
in every candidate of every round.

Breeding. :func:`next_round` crosses the chosen candidates: each child takes each free attribute
from one of two parents, sometimes mutated to a neighbouring value on its scale, and inherits one
parent's seed (a seed selects a dropout pattern and cannot be blended) or, by mutation, a new one.
No child repeats a parent or a sibling.

Refinement. Like a single face, every candidate goes through the second stage (the refiner) by
default, so the witness chooses among the faces an appeal would show; ``Candidate.image`` keeps
stage one's face and ``Candidate.shown`` is the face (the refined one where there is one).

One generator call per candidate. A seeded pass draws one dropout pattern for its whole batch, so
in a batch a face would depend on its neighbours; calling once per candidate keeps every candidate
reproducible from its seed and attributes alone (``sketch2face generate --seed S --skin ...`` gives
the same face). The sketch is prepared (face detection, crop, 256 px) once per round.

Everything here is pure library code on top of the one pipeline object; the web app reaches it
through its model client (``serving/client.py``), so the remote model server works the same way.
"""

from __future__ import annotations

import itertools
import math
import random
import secrets
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sketch2face.attributes import GENDERS, HAIR_COLOURS, SKIN_TONES, FaceAttributes

DEFAULT_CANDIDATES = 6
CANDIDATES_NOTICE = "Generated likenesses, not photographs of real people."
MAX_CANDIDATES = 12
MAX_SEED = 2**31 - 1
#: the witness attributes a candidate array varies, in a fixed order
ATTRIBUTE_FIELDS = ("skin", "hair_color", "gender")
#: each attribute's values in scale order (mutations step to a neighbour on this scale)
PALETTES: dict[str, tuple[str, ...]] = {
    "skin": tuple(SKIN_TONES),  # very light ... dark
    "hair_color": tuple(HAIR_COLOURS),  # black ... white
    "gender": GENDERS,
}
_RGB_PALETTES = {"skin": SKIN_TONES, "hair_color": HAIR_COLOURS}
#: chance that a free attribute of a child is stepped to a neighbouring value
MUTATION_RATE = 0.25
#: chance that a child gets a fresh seed instead of one parent's
SEED_MUTATION_RATE = 0.3


class CandidateError(ValueError):
    """Bad input for candidate generation (count out of range, nothing chosen, bad attributes)."""


@dataclass(frozen=True)
class CandidateSpec:
    """What to generate for one candidate: a dropout seed and the witness attributes.

    ``parents`` are the positions, in the list given to :func:`next_round`, of the candidates this
    one was bred from (empty in a first round).
    """

    seed: int
    attributes: Mapping[str, str] = field(default_factory=dict)
    parents: tuple[int, ...] = ()

    @property
    def key(self) -> tuple[int, tuple[tuple[str, str], ...]]:
        """(seed, sorted attributes): two specs with the same key give the same face."""
        return self.seed, tuple(sorted(self.attributes.items()))


@dataclass(frozen=True)
class Candidate:
    """One generated candidate: stage one's 256x256 RGB face, its refined face (None when not
    refined) and how it was made."""

    image: np.ndarray
    seed: int
    attributes: Mapping[str, str]
    parents: tuple[int, ...] = ()
    refined: np.ndarray | None = None
    #: the face shown on the studio backdrop (``backdrop="studio"``), else None
    studio: np.ndarray | None = None

    @property
    def shown(self) -> np.ndarray:
        """The candidate's face: on the studio backdrop when asked, else the refined one when
        there is one, else stage one's."""
        if self.studio is not None:
            return self.studio
        return self.refined if self.refined is not None else self.image

    @property
    def spec(self) -> CandidateSpec:
        """The spec that reproduces this candidate."""
        return CandidateSpec(self.seed, dict(self.attributes), self.parents)


@dataclass(frozen=True)
class CandidateSet:
    """A rendered round: the prepared sketch the network saw and one candidate per spec."""

    input_u8: np.ndarray
    candidates: list[Candidate]
    face_found: bool
    model_version: str
    #: False when the model is not attribute-conditioned (only the seeds made a difference)
    attributes_applied: bool
    notices: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: the second stage that refined the candidates ("" when none was refined)
    refiner_version: str = ""


class CandidatePipeline(Protocol):
    """The part of :class:`sketch2face.pipeline.Sketch2Face` candidates need."""

    model_version: str

    @property
    def supports_attributes(self) -> bool:
        """Whether the generator is attribute-conditioned."""
        ...

    def prepare(self, sketch: Any, *, prepared: bool = False) -> tuple[np.ndarray, bool]:
        """Sketch -> (256x256 model input, face found)."""
        ...

    def __call__(self, sketches: Any, **kwargs: Any) -> Any:
        """Generate (returns a ``GenerationResult``)."""
        ...


# ---------------------------------------------------------------------------------- validation
def check_count(n: int) -> int:
    """``n`` if it is a candidate count the app allows (1..MAX_CANDIDATES), else CandidateError."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CANDIDATES:
        raise CandidateError(
            f"The number of candidates must be a whole number from 1 to {MAX_CANDIDATES}, "
            f"not {n!r}."
        )
    return n


def clean_attributes(attributes: Mapping[str, Any] | None) -> dict[str, str]:
    """The given (non-empty) witness attributes as strings, checked; unknown names or values
    raise CandidateError saying what is allowed."""
    cleaned = {
        k: str(v).strip() for k, v in (attributes or {}).items() if v is not None and str(v).strip()
    }
    try:
        FaceAttributes.from_request(cleaned)
    except ValueError as exc:
        raise CandidateError(str(exc)) from exc
    return {k: cleaned[k] for k in ATTRIBUTE_FIELDS if k in cleaned}


def _check_spec(spec: CandidateSpec) -> None:
    if (
        isinstance(spec.seed, bool)
        or not isinstance(spec.seed, int)
        or not 0 <= spec.seed <= MAX_SEED
    ):
        raise CandidateError(f"A candidate seed must be a whole number from 0 to {MAX_SEED}.")
    clean_attributes(spec.attributes)


def _rng(rng_seed: int | None) -> random.Random:
    return random.Random(rng_seed if rng_seed is not None else secrets.randbits(64))


def _new_seed(rng: random.Random, taken: set[int]) -> int:
    while True:
        seed = rng.randint(0, MAX_SEED)
        if seed not in taken:
            taken.add(seed)
            return seed


# ---------------------------------------------------------------------------------- planning
def _spread(values: Sequence[str], n: int, rng: random.Random) -> list[str]:
    """``n`` values covering ``values`` as evenly as possible (each used n/len times, +-1), in a
    random order: six candidates get six different skin tones, three female and three male."""
    pool = list(values)
    rng.shuffle(pool)
    column = [pool[i % len(pool)] for i in range(n)]
    rng.shuffle(column)
    return column


def plan_candidates(
    n: int = DEFAULT_CANDIDATES,
    fixed_attributes: Mapping[str, Any] | None = None,
    rng_seed: int | None = None,
    *,
    vary_attributes: bool = True,
) -> list[CandidateSpec]:
    """Specs for a first round: free attributes spread over their scales, distinct seeds.

    ``fixed_attributes`` (what the witness is sure of) appear unchanged in every spec. With
    ``vary_attributes=False`` (a model without attribute input) only the seeds differ.
    ``rng_seed`` makes the plan reproducible.
    """
    check_count(n)
    fixed = clean_attributes(fixed_attributes)
    rng = _rng(rng_seed)
    free = [k for k in ATTRIBUTE_FIELDS if k not in fixed] if vary_attributes else []
    best: list[dict[str, str]] = [dict(fixed) for _ in range(n)]
    best_unique = -1
    for _ in range(8):  # a few shuffles: keep the one with the most distinct attribute sets
        columns = {k: _spread(PALETTES[k], n, rng) for k in free}
        rows = [{**fixed, **{k: columns[k][i] for k in free}} for i in range(n)]
        unique = len({tuple(sorted(r.items())) for r in rows})
        if unique > best_unique:
            best, best_unique = rows, unique
        if unique == n or not free:
            break
    taken: set[int] = set()
    return [CandidateSpec(_new_seed(rng, taken), row) for row in best]


def _neighbour(name: str, value: str, rng: random.Random) -> str:
    """A value next to ``value`` on its attribute's scale (gender: the other one). Colours given
    as #rrggbb step from the nearest named colour."""
    scale = PALETTES[name]
    if value in scale:
        i = scale.index(value)
    elif name in _RGB_PALETTES:
        parsed = FaceAttributes.from_request({name: value})
        rgb = np.asarray(parsed.skin_rgb if name == "skin" else parsed.hair_rgb, dtype=np.float32)
        colours = np.asarray([_RGB_PALETTES[name][v] for v in scale], dtype=np.float32)
        i = int(np.argmin(np.abs(colours - rgb).sum(axis=1)))
    else:
        return rng.choice(scale)
    steps = [j for j in (i - 1, i + 1) if 0 <= j < len(scale)]
    return scale[rng.choice(steps)]


def shared_attributes(chosen: Sequence[Candidate | CandidateSpec]) -> dict[str, str]:
    """The attributes every one of ``chosen`` has with the same value (e.g. two male picks:
    ``{"gender": "male"}``)."""
    first = dict(chosen[0].attributes) if chosen else {}
    return {
        k: str(v)
        for k, v in first.items()
        if k in ATTRIBUTE_FIELDS and v and all(c.attributes.get(k) == v for c in chosen[1:])
    }


def next_round(
    chosen: Sequence[Candidate | CandidateSpec],
    n: int = DEFAULT_CANDIDATES,
    fixed_attributes: Mapping[str, Any] | None = None,
    rng_seed: int | None = None,
    *,
    vary_attributes: bool = True,
    mutation_rate: float = MUTATION_RATE,
    seed_mutation_rate: float = SEED_MUTATION_RATE,
) -> list[CandidateSpec]:
    """ "More like these": ``n`` new specs bred from the chosen candidates.

    Each child has a first parent taken in turn from ``chosen`` (so every pick is used) and a
    second one at random (another pick where there are several). Every free attribute comes from
    either parent and is stepped to a neighbouring value with probability ``mutation_rate``; the
    seed is one parent's, or a new one with probability ``seed_mutation_rate``. The attributes in
    ``fixed_attributes``, and with two or more picks those all picks share
    (:func:`shared_attributes`: two male picks breed no female child), are set as given in every
    child and never mutate. No child repeats a
    parent or another child. With ``vary_attributes=False`` (a model that ignores the witness
    description) only the noise tells faces apart, so every child gets a new seed.
    """
    check_count(n)
    if not vary_attributes:
        seed_mutation_rate = 1.0
    parents = list(chosen)
    if not parents:
        raise CandidateError("Choose at least one candidate to breed the next round from.")
    fixed = clean_attributes(fixed_attributes)
    if len(parents) > 1:  # what every pick shares is what the witness saw: held fixed too
        fixed = {**shared_attributes(parents), **fixed}
    rng = _rng(rng_seed)
    free = [k for k in ATTRIBUTE_FIELDS if k not in fixed] if vary_attributes else []
    seen = {CandidateSpec(p.seed, {**dict(p.attributes), **fixed}).key for p in parents}
    taken = {p.seed for p in parents}
    children: list[CandidateSpec] = []
    for i in itertools.count():
        if len(children) == n:
            break
        a = i % len(parents)
        b = rng.choice([j for j in range(len(parents)) if j != a] or [a])
        attrs = dict(fixed)
        for name in free:
            value = parents[rng.choice((a, b))].attributes.get(name) or rng.choice(PALETTES[name])
            if rng.random() < mutation_rate:
                value = _neighbour(name, value, rng)
            attrs[name] = value
        seed = parents[rng.choice((a, b))].seed
        if rng.random() < seed_mutation_rate:
            seed = _new_seed(rng, taken)
        spec = CandidateSpec(seed, attrs, tuple(sorted({a, b})))
        if spec.key in seen:  # same face as a parent or a sibling: give it its own noise
            spec = CandidateSpec(_new_seed(rng, taken), attrs, spec.parents)
        seen.add(spec.key)
        children.append(spec)
    return children


# ---------------------------------------------------------------------------------- rendering
def render_candidates(
    pipeline: CandidatePipeline,
    sketch: Any,
    specs: Sequence[CandidateSpec],
    *,
    prepared: bool = False,
    lock: AbstractContextManager[Any] | None = None,
    refine: bool = True,
    backdrop: str = "photo",
) -> CandidateSet:
    """Generate one face per spec for ``sketch`` (prepared once; one generator call per spec).

    ``prepared=True``: ``sketch`` is already the 256x256 model input (e.g. ``input_u8`` of an
    earlier round), so every round of a case sees exactly the same input. ``lock`` is held around
    each model call (the web app's model client passes its run lock, so other users' generations
    interleave with a long round instead of waiting for all of it). ``refine`` (default True):
    each candidate also goes through the pipeline's second stage (``Candidate.refined``).
    ``backdrop="studio"``: each candidate's face is also put on the studio backdrop
    (``Candidate.studio``, what ``Candidate.shown`` gives).
    """
    if not specs:
        raise CandidateError("No candidates to generate.")
    check_count(len(specs))
    for spec in specs:
        _check_spec(spec)
    guard: AbstractContextManager[Any] = lock if lock is not None else nullcontext()
    started = time.perf_counter()
    with guard:
        model_input, face_found = pipeline.prepare(sketch, prepared=prepared)
    prepared_at = time.perf_counter()
    candidates: list[Candidate] = []
    notices: list[str] = []
    refine_ms = 0.0
    refiner_version = ""
    for spec in specs:
        with guard:
            result = pipeline(
                model_input,
                prepared=True,
                seed=spec.seed,
                attributes=dict(spec.attributes),
                refine=refine,
                # only when asked: a pipeline without backdrops still renders photo rounds
                **({"backdrop": backdrop} if backdrop != "photo" else {}),
            )
        notices.extend(n for n in result.notices if n not in notices)
        refined = result.refined[0] if getattr(result, "refined", None) else None
        refine_ms += float(result.timings_ms.get("refine", 0.0))
        refiner_version = refiner_version or str(getattr(result, "refiner_version", "") or "")
        studio = result.studio[0] if getattr(result, "studio", None) else None
        candidates.append(
            Candidate(
                result.faces[0], spec.seed, dict(spec.attributes), spec.parents, refined, studio
            )
        )
    done = time.perf_counter()
    return CandidateSet(
        input_u8=model_input,
        candidates=candidates,
        face_found=bool(face_found),
        model_version=str(getattr(pipeline, "model_version", "")),
        attributes_applied=bool(getattr(pipeline, "supports_attributes", False)),
        notices=notices,
        timings_ms={
            "prepare": (prepared_at - started) * 1e3,
            "generate": (done - prepared_at) * 1e3,  # both stages
            "per_candidate": (done - prepared_at) * 1e3 / len(specs),
            **({"refine": refine_ms} if refine_ms else {}),
        },
        refiner_version=refiner_version,
    )


def generate_candidates(
    pipeline: CandidatePipeline,
    sketch: Any,
    n: int = DEFAULT_CANDIDATES,
    fixed_attributes: Mapping[str, Any] | None = None,
    rng_seed: int | None = None,
    *,
    prepared: bool = False,
) -> list[Candidate]:
    """``n`` visibly different candidate faces for one sketch (see the module docstring).

    Attributes in ``fixed_attributes`` stay fixed; the others are varied when the model takes
    attributes (otherwise only the seeds differ). ``rng_seed`` makes the array reproducible.
    """
    specs = plan_candidates(
        n,
        fixed_attributes,
        rng_seed,
        vary_attributes=bool(getattr(pipeline, "supports_attributes", False)),
    )
    return render_candidates(pipeline, sketch, specs, prepared=prepared).candidates


# ---------------------------------------------------------------------------------- pictures
def grid_columns(n: int) -> int:
    """Columns of a candidate grid: one row up to 3 faces, 2x2 for four, 3 columns up to nine
    (2x3 for six), 4 beyond (3x4 for twelve)."""
    if n == 4:
        return 2
    return n if n <= 3 else 3 if n <= 9 else 4


def candidate_grid(
    images: Sequence[np.ndarray],
    *,
    columns: int | None = None,
    cell_px: int = 256,
    labels: bool = True,
) -> np.ndarray:
    """The candidates as one sheet in reading order, numbered 1..N in a corner (the numbers the
    web page shows), built with :func:`sketch2face.imaging.make_grid`."""
    from PIL import Image, ImageDraw

    from sketch2face.imaging import make_grid

    if not images:
        raise CandidateError("candidate_grid needs at least one image")
    cols = columns or grid_columns(len(images))
    cells = []
    for i, image in enumerate(images, start=1):
        cell = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
        if cell.size != (cell_px, cell_px):
            cell = cell.resize((cell_px, cell_px), Image.BICUBIC)
        if labels:
            draw = ImageDraw.Draw(cell)
            size = max(cell_px // 12, 10)
            box = (4, 4, 4 + size * 2, 4 + int(size * 1.5))
            draw.rectangle(box, fill=(255, 255, 255))
            draw.text(
                ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2),
                str(i),
                fill=(20, 20, 20),
                anchor="mm",
                font_size=size,
            )
        cells.append(np.asarray(cell))
    rows = [cells[r : r + cols] for r in range(0, len(cells), cols)]
    return make_grid(rows, cell_px=cell_px)


def mean_pairwise_distance(images: Sequence[np.ndarray]) -> float:
    """Mean absolute pixel difference (0..255) over all pairs of images: how different a set of
    faces looks, in the simplest terms (0 = identical; the benchmark compares candidate arrays
    with plain seed variations on this scale)."""
    if len(images) < 2:
        return 0.0
    stack = [np.asarray(im, dtype=np.float32) for im in images]
    total = 0.0
    pairs = 0
    for x, y in itertools.combinations(stack, 2):
        total += float(np.abs(x - y).mean())
        pairs += 1
    return total / pairs if pairs else math.nan
