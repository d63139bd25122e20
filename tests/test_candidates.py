"""Candidate arrays (sketch2face.candidates): planning, breeding, rendering on a tiny real model,
the grid picture and the `generate --candidates N` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sketch2face.candidates import (
    MAX_CANDIDATES,
    Candidate,
    CandidateError,
    CandidateSpec,
    candidate_grid,
    generate_candidates,
    mean_pairwise_distance,
    next_round,
    plan_candidates,
    render_candidates,
    shared_attributes,
)
from sketch2face.pipeline import Sketch2Face


@pytest.fixture(scope="module")
def attr_pipe(tmp_path_factory: pytest.TempPathFactory) -> Sketch2Face:
    """A tiny attribute-conditioned model whose attribute input really changes the face (the
    projection is zero-initialised in training; here it gets random weights)."""
    from conftest import make_tiny_checkpoint

    path = make_tiny_checkpoint(
        tmp_path_factory.mktemp("attr_model") / "attr.safetensors", attribute_dim=10
    )
    pipe = Sketch2Face.from_pretrained(path, device="cpu", backend="torch")
    proj = pipe.backend.generator.attribute_proj  # type: ignore[attr-defined]
    torch.manual_seed(3)
    with torch.no_grad():
        proj.weight.normal_(0, 2.0)
    return pipe


@pytest.fixture(scope="module")
def sketch_u8() -> np.ndarray:
    img = np.full((96, 96, 3), 255, np.uint8)
    yy, xx = np.mgrid[:96, :96]
    img[np.abs(((xx - 48) / 34) ** 2 + ((yy - 48) / 43) ** 2 - 1) < 0.12] = 20
    img[40:43, 30:40] = 20
    img[40:43, 56:66] = 20
    return img


def test_plan_spreads_free_attributes_and_keeps_fixed_ones() -> None:
    specs = plan_candidates(6, {"skin": "dark"}, rng_seed=1)
    assert len(specs) == 6
    assert all(s.attributes["skin"] == "dark" for s in specs)  # fixed: never varied
    assert len({s.seed for s in specs}) == 6
    assert len({s.attributes["hair_color"] for s in specs}) == 6  # 6 of 7 hair colours
    genders = [s.attributes["gender"] for s in specs]
    assert sorted(genders) == ["female"] * 3 + ["male"] * 3
    assert len({s.key for s in specs}) == 6
    # reproducible with a seed, different without one
    assert plan_candidates(6, {"skin": "dark"}, rng_seed=1) == specs
    assert plan_candidates(6, {"skin": "dark"}) != specs
    # every attribute fixed: only the seeds differ
    all_fixed = {"skin": "light", "hair_color": "#a0785a", "gender": "male"}
    assert all(s.attributes == all_fixed for s in plan_candidates(4, all_fixed, rng_seed=2))
    # a model without attribute input: attributes are not varied
    assert all(s.attributes == {} for s in plan_candidates(5, None, 3, vary_attributes=False))


@pytest.mark.parametrize("n", [0, -1, MAX_CANDIDATES + 1, 2.5, "6", True])
def test_bad_counts_and_attributes_are_clear_errors(n: Any) -> None:
    with pytest.raises(CandidateError, match="from 1 to 12"):
        plan_candidates(n)


def test_bad_attributes_and_empty_choice_are_clear_errors() -> None:
    with pytest.raises(CandidateError, match="skin tone 'purple'"):
        plan_candidates(3, {"skin": "purple"})
    with pytest.raises(CandidateError, match="unknown attribute"):
        plan_candidates(3, {"eyes": "blue"})
    with pytest.raises(CandidateError, match="at least one"):
        next_round([], 3)


def test_next_round_recombines_the_chosen() -> None:
    a = CandidateSpec(11, {"skin": "light", "hair_color": "black", "gender": "female"})
    b = CandidateSpec(22, {"skin": "brown", "hair_color": "blonde", "gender": "male"})
    children = next_round([a, b], 8, rng_seed=5, mutation_rate=0.0, seed_mutation_rate=0.0)
    assert len(children) == 8
    keys = {c.key for c in children}
    assert len(keys) == 8 and a.key not in keys and b.key not in keys  # nothing repeated
    for child in children:
        assert child.parents == (0, 1)
        for name in ("skin", "hair_color", "gender"):  # no mutation: every gene from a parent
            assert child.attributes[name] in (a.attributes[name], b.attributes[name])
    assert {c.seed for c in children} & {11, 22}  # seeds are inherited
    mixed = [
        c
        for c in children
        if {c.attributes["skin"], c.attributes["hair_color"]}
        not in ({"light", "black"}, {"brown", "blonde"})
    ]
    assert mixed, "crossover should mix the parents' attributes"


def test_next_round_holds_what_all_picks_share() -> None:
    """Issue 23 item 3: two male picks never breed a female child, even when every gene
    mutates; what the picks do not share still varies."""
    a = CandidateSpec(11, {"skin": "light", "hair_color": "black", "gender": "male"})
    b = CandidateSpec(22, {"skin": "brown", "hair_color": "black", "gender": "male"})
    assert shared_attributes([a, b]) == {"hair_color": "black", "gender": "male"}
    for seed in range(20):
        children = next_round([a, b], 12, rng_seed=seed, mutation_rate=1.0)
        assert {c.attributes["gender"] for c in children} == {"male"}
        assert {c.attributes["hair_color"] for c in children} == {"black"}
    assert len({c.attributes["skin"] for c in children}) > 1  # the rest still varies


def test_next_round_keeps_fixed_attributes_and_mutates_to_neighbours() -> None:
    parent = CandidateSpec(7, {"skin": "medium", "hair_color": "brown", "gender": "male"})
    children = next_round([parent], 12, {"gender": "male"}, rng_seed=9, mutation_rate=1.0)
    assert all(c.attributes["gender"] == "male" for c in children)
    assert {c.attributes["skin"] for c in children} <= {"light", "olive"}  # one step away
    assert {c.attributes["hair_color"] for c in children} <= {"dark-brown", "auburn"}
    assert len({c.key for c in children}) == 12 and all(c.parents == (0,) for c in children)
    # a single pick without mutation still gives new faces: new seeds around the same attributes
    same = next_round([parent], 4, rng_seed=1, mutation_rate=0.0, seed_mutation_rate=0.0)
    assert len({c.key for c in same}) == 4 and parent.key not in {c.key for c in same}


def test_generate_candidates_gives_n_distinct_faces(
    attr_pipe: Sketch2Face, sketch_u8: np.ndarray
) -> None:
    candidates = generate_candidates(attr_pipe, sketch_u8, 6, {"gender": "female"}, rng_seed=4)
    assert len(candidates) == 6
    assert all(c.image.shape == (256, 256, 3) and c.image.dtype == np.uint8 for c in candidates)
    assert all(c.attributes["gender"] == "female" for c in candidates)
    flat = {c.image.tobytes() for c in candidates}
    assert len(flat) == 6
    assert mean_pairwise_distance([c.image for c in candidates]) > 0.0  # tiny random model: small
    # each candidate is reproducible from its seed and attributes alone (a plain pipeline call)
    again = attr_pipe(sketch_u8, seed=candidates[2].seed, attributes=candidates[2].attributes)
    assert np.array_equal(again.faces[0], candidates[2].image)


def test_render_prepares_once_and_respects_fixed_attributes(
    attr_pipe: Sketch2Face, sketch_u8: np.ndarray
) -> None:
    calls: list[dict[str, Any]] = []

    class Spy:
        model_version = attr_pipe.model_version
        supports_attributes = True

        def __init__(self) -> None:
            self.prepares = 0

        def prepare(self, sketch: Any, *, prepared: bool = False) -> Any:
            self.prepares += 1
            return attr_pipe.prepare(sketch, prepared=prepared)

        def __call__(self, sketches: Any, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return attr_pipe(sketches, **kwargs)

    spy = Spy()
    specs = plan_candidates(4, {"skin": "olive", "hair_color": "grey"}, rng_seed=8)
    result = render_candidates(spy, sketch_u8, specs)
    assert spy.prepares == 1 and len(calls) == 4
    assert all(c["prepared"] is True for c in calls)
    assert [c["attributes"]["skin"] for c in calls] == ["olive"] * 4
    assert [c["attributes"]["hair_color"] for c in calls] == ["grey"] * 4
    assert [c["seed"] for c in calls] == [s.seed for s in specs]
    assert result.input_u8.shape == (256, 256, 3) and result.attributes_applied
    assert set(result.timings_ms) == {"prepare", "generate", "per_candidate"}
    # the next round from the stored model input gives the same faces as from the sketch
    again = render_candidates(attr_pipe, result.input_u8, specs[:2], prepared=True)
    assert np.array_equal(again.candidates[0].image, result.candidates[0].image)


def test_next_round_renders_children_of_the_chosen(
    attr_pipe: Sketch2Face, sketch_u8: np.ndarray
) -> None:
    first = generate_candidates(attr_pipe, sketch_u8, 6, rng_seed=12)
    specs = next_round([first[1], first[4]], 6, rng_seed=13)
    second = render_candidates(attr_pipe, sketch_u8, specs).candidates
    assert len(second) == 6 and all(c.parents for c in second)
    parents_keys = {first[1].spec.key, first[4].spec.key}
    assert not parents_keys & {c.spec.key for c in second}
    assert len({c.image.tobytes() for c in second}) == 6


def test_candidate_grid_is_numbered_rows_of_three(sketch_u8: np.ndarray) -> None:
    faces = [np.full((256, 256, 3), 40 * i, np.uint8) for i in range(6)]
    grid = candidate_grid(faces)
    assert grid.shape == (2 * 256 + 3 * 4, 3 * 256 + 4 * 4, 3)
    assert candidate_grid(faces * 2).shape[1] == 4 * 256 + 5 * 4  # twelve: 3 rows of 4
    # the number label is drawn in the corner; the rest of the cell is untouched
    cell = grid[4 : 4 + 256, 4 : 4 + 256]
    assert (cell[:30, :50] == 255).any() and (cell[200:, 200:] == 0).all()
    with pytest.raises(CandidateError):
        candidate_grid([])


def test_mean_pairwise_distance() -> None:
    black, white = np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)
    assert mean_pairwise_distance([black, white]) == 255.0
    assert mean_pairwise_distance([black, black, white]) == pytest.approx(170.0)
    assert mean_pairwise_distance([black]) == 0.0


def test_cli_generate_candidates(
    tmp_path: Path, tiny_checkpoint: Path, sketch_u8: np.ndarray
) -> None:
    from sketch2face.cli.main import main

    sketch = tmp_path / "witness.png"
    Image.fromarray(sketch_u8).save(sketch)
    out = tmp_path / "out"
    options = ["--candidates", "4", "--seed", "5", "--skin", "dark"]
    options += ["--checkpoint", str(tiny_checkpoint), "--device", "cpu"]
    code = main(["generate", str(sketch), "-o", str(out), *options])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "witness_candidate01.png",
        "witness_candidate02.png",
        "witness_candidate03.png",
        "witness_candidate04.png",
        "witness_candidates.json",
        "witness_candidates_grid.png",
    ]
    meta = json.loads((out / "witness_candidates.json").read_text())
    assert [c["file"] for c in meta["candidates"]] == names[:4]
    assert all(c["attributes"]["skin"] == "dark" for c in meta["candidates"])
    assert len({c["seed"] for c in meta["candidates"]}) == 4
    grid = np.asarray(Image.open(out / "witness_candidates_grid.png"))
    assert grid.shape == (2 * 256 + 3 * 4, 2 * 256 + 3 * 4, 3)  # four faces: 2x2
    faces = [np.asarray(Image.open(out / n)) for n in names[:4]]
    assert len({f.tobytes() for f in faces}) == 4
    # the same --seed gives the same candidates
    again = tmp_path / "again"
    assert main(["generate", str(sketch), "-o", str(again), *options]) == 0
    assert np.array_equal(  # the same pixels (the signed files differ in their signing time)
        np.asarray(Image.open(again / "witness_candidate03.png")),
        np.asarray(Image.open(out / "witness_candidate03.png")),
    )
    with pytest.raises(SystemExit) as exc:
        main(["generate", str(sketch), "-o", str(out), "--candidates", "13"])
    assert exc.value.code == 2


def test_cli_faces_are_signed_with_the_instance_key(
    tmp_path: Path, tiny_checkpoint: Path, sketch_u8: np.ndarray
) -> None:
    """Issue 23 item 13: every face file `generate` writes (plain and --candidates, and the
    candidates' grid) is signed with the instance key, with the weights' SHA-256; `verify`
    against that folder says valid (exit 0)."""
    import hashlib

    from sketch2face.cli.main import main
    from sketch2face.provenance import instance_public_key, verify_file

    sketch = tmp_path / "witness.png"
    Image.fromarray(sketch_u8).save(sketch)
    instance = tmp_path / "instance"
    common = ["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--key-dir", str(instance)]
    assert main(["generate", str(sketch), "-o", str(tmp_path / "one"), *common]) == 0
    cands = ["--candidates", "2", "--seed", "3"]
    assert main(["generate", str(sketch), "-o", str(tmp_path / "two"), *cands, *common]) == 0
    key = instance_public_key(instance)
    assert key is not None
    files = [tmp_path / "one" / "witness.png", *sorted((tmp_path / "two").glob("*.png"))]
    assert len(files) == 4
    weights = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    for path in files:
        result = verify_file(path, key)
        assert result.status == "valid", (path.name, result.reason)
        assert result.metadata.model_sha256 == weights and result.metadata.model_id
        assert main(["verify", str(path), "--key-dir", str(instance)]) == 0


def test_candidate_dataclass_spec_roundtrip() -> None:
    c = Candidate(np.zeros((2, 2, 3), np.uint8), 5, {"skin": "dark"}, (0,))
    assert c.spec == CandidateSpec(5, {"skin": "dark"}, (0,))


def test_next_round_for_a_model_that_ignores_attributes_gives_every_child_new_noise() -> None:
    picks = [
        CandidateSpec(11, {"skin": "dark", "gender": "male"}),
        CandidateSpec(22, {"skin": "light", "gender": "female"}),
    ]
    children = next_round(picks, 6, {}, rng_seed=3, vary_attributes=False)
    seeds = [c.seed for c in children]
    assert len(set(seeds)) == 6 and not {11, 22} & set(seeds)
