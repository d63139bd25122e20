"""``ModelClient``: how the web tier reaches the model, in-process or over HTTP.

Both clients take a decoded sketch and return a :class:`ModelOutput`, so ``generation.py`` does not
know which one it talks to. The in-process client loads ONE ``Sketch2Face`` per process, lazily,
on the first generation (never at import or app creation, never per request).

The backdrop (``"photo"`` or ``"studio"``, :mod:`sketch2face.refine.backdrop`) is the model tier's
like both stages: the client asks the pipeline for it (in process, or the model server's ``/v1``
``backdrop`` field over HTTP) and returns the studio face beside stage one's and the refined one,
so the web tier stores what the model tier made and never edits a face itself.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sketch2face.errors import InvalidImageError, Sketch2FaceError
from sketch2face.imaging import decode_image_bytes, encode_png
from sketch2face.refine.backdrop import DEFAULT_BACKDROP, check_backdrop

if TYPE_CHECKING:
    from sketch2face.candidates import CandidateSpec

log = logging.getLogger(__name__)


#: how long a remote model server's answer to "is refinement available?" is reused
REFINE_CHECK_INTERVAL_S = 60.0
#: how long a readiness check waits for the model server's /v1/health
HEALTH_TIMEOUT_S = 2.0
#: a stalled model tier must not take every web thread (issue 25): at most this many calls in
#: flight per web process, a short connect timeout, and after a call that got no answer, calls
#: fail at once (503) for a while instead of waiting again
MAX_CONCURRENT_CALLS = 4
CONNECT_TIMEOUT_S = 3.0
SLOT_WAIT_S = 0.5
RETRY_AFTER_FAILURE_S = 15.0


class ModelUnavailableError(Sketch2FaceError):
    """The model could not be loaded or the model server could not be reached."""


@dataclass(frozen=True)
class ModelOutput:
    """What one generation returns, whichever client ran it."""

    input_u8: np.ndarray  # the prepared 256x256 sketch the network saw
    face_u8: np.ndarray  # 256x256 stage-one face
    #: the refined face (256x256 from the project's refiner, 512x512 from GFPGAN), or None
    refined_u8: np.ndarray | None
    model_version: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    face_found: bool = True  # False: no face detected on the sketch, it was centred and padded
    batch_size: int = 1  # how many queued requests shared the model call
    refiner_version: str = ""  # the second stage that made ``refined_u8`` ("" when None)
    #: the backdrop asked for: "photo" (the networks' background) or "studio"
    backdrop: str = DEFAULT_BACKDROP
    #: with "studio": THE face (refined, else stage one's) on the studio backdrop, else None
    studio_u8: np.ndarray | None = None

    @property
    def shown_u8(self) -> np.ndarray:
        """THE face: on the studio backdrop when asked, else the refined one, else stage one's."""
        if self.studio_u8 is not None:
            return self.studio_u8
        return self.refined_u8 if self.refined_u8 is not None else self.face_u8


@dataclass(frozen=True)
class CandidatesOutput:
    """What one round of candidate faces returns (``sketch2face.candidates``), whichever client
    ran it: one face per requested spec, in order."""

    input_u8: np.ndarray  # the prepared 256x256 sketch the network saw (store it for next rounds)
    faces_u8: list[np.ndarray]  # 256x256 stage-one candidate faces
    model_version: str
    attributes_applied: bool  # False: the model ignores skin/hair/gender (only seeds differed)
    face_found: bool = True
    timings_ms: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    #: each candidate's refined face (None where not refined); empty: none was refined
    refined_u8: list[np.ndarray | None] = field(default_factory=list)
    refiner_version: str = ""
    #: the backdrop asked for: "photo" (the networks' background) or "studio"
    backdrop: str = DEFAULT_BACKDROP
    #: with "studio": each candidate's face (refined, else stage one's) on the studio backdrop;
    #: empty otherwise
    studio_u8: list[np.ndarray] = field(default_factory=list)

    def refined(self, i: int) -> np.ndarray | None:
        """Candidate ``i``'s refined face, or None."""
        return self.refined_u8[i] if i < len(self.refined_u8) else None

    def studio(self, i: int) -> np.ndarray | None:
        """Candidate ``i``'s face on the studio backdrop, or None (backdrop "photo")."""
        return self.studio_u8[i] if i < len(self.studio_u8) else None

    def shown(self, i: int) -> np.ndarray:
        """Candidate ``i``'s face as shown: on the studio backdrop when asked, else the refined
        one, else stage one's."""
        placed = self.studio(i)
        if placed is not None:
            return placed
        refined = self.refined(i)
        return refined if refined is not None else self.faces_u8[i]


class ModelClient(Protocol):
    """Turns one decoded sketch into a :class:`ModelOutput` (or a round of candidates)."""

    def generate(
        self,
        sketch_u8: np.ndarray,
        *,
        refine: bool,
        seed: int | None,
        attributes: dict[str, str] | None = None,
        backdrop: str = DEFAULT_BACKDROP,
    ) -> ModelOutput:
        """Run the model (attributes: skin, hair_color, gender; ``backdrop`` "studio": also THE
        face on the studio backdrop, ``studio_u8``); raise InvalidImageError for bad input
        (ValueError for an unknown backdrop), ModelUnavailableError otherwise."""
        ...

    def candidates(
        self,
        sketch_u8: np.ndarray,
        specs: Sequence[CandidateSpec],
        *,
        prepared: bool = False,
        refine: bool = True,
        backdrop: str = DEFAULT_BACKDROP,
    ) -> CandidatesOutput:
        """One face per spec (seed + attributes) for one sketch, refined unless ``refine`` is
        False, each also on the studio backdrop with ``backdrop="studio"``; ``prepared``: the
        sketch is already the 256x256 model input of an earlier round. ValueError
        (InvalidImageError, CandidateError, unknown backdrop) for bad input,
        ModelUnavailableError otherwise."""
        ...

    def describe(self) -> dict[str, Any]:
        """Small status dict for health pages."""
        ...

    def refine_available(self) -> bool:
        """Whether ``refine=True`` can give a refined face (a refiner is installed or configured:
        ``refine.resolve``)."""
        ...


#: what one pipeline call of a batch shares: (refine, seed, attributes, backdrop)
_BatchKey = tuple[bool, int | None, tuple[tuple[str, str], ...], str]


@dataclass
class _Pending:
    """One queued request of :class:`InProcessModelClient`."""

    sketch_u8: np.ndarray
    refine: bool
    seed: int | None
    attributes: tuple[tuple[str, str], ...] = ()
    backdrop: str = DEFAULT_BACKDROP
    done: threading.Event = field(default_factory=threading.Event)
    output: ModelOutput | None = None
    error: BaseException | None = None


class InProcessModelClient:
    """Runs ``Sketch2Face`` in this process; loaded once, on first use, shared by all threads."""

    def __init__(
        self,
        checkpoint: str | None = None,
        device: str | None = None,
        *,
        max_batch: int = 8,
        refiner: str | None = None,
    ) -> None:
        self.checkpoint = checkpoint
        self.device = device
        #: refiner checkpoint ("none": off); None: ``refine.resolve``'s default choice
        self.refiner = refiner
        self.max_batch = max(1, max_batch)
        self._pipeline: Any | None = None
        self._load_lock = threading.Lock()
        # One pipeline call at a time (on CPU one pass already uses every core; the refiner keeps
        # per-call state). Requests that arrive meanwhile wait in _queue and the next lock holder
        # runs them together as one batch: with 8 users, ~2x the throughput of one-by-one on CPU.
        self._run_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: deque[_Pending] = deque()

    @property
    def is_loaded(self) -> bool:
        """Whether the pipeline has been loaded yet."""
        return self._pipeline is not None

    def pipeline(self) -> Any:
        """The shared pipeline, loading it on first call (double-checked locking)."""
        if self._pipeline is None:
            with self._load_lock:
                if self._pipeline is None:
                    started = time.perf_counter()
                    try:
                        from sketch2face.pipeline import Sketch2Face
                    except ImportError as exc:
                        raise ModelUnavailableError(
                            f"the sketch2face pipeline cannot be imported ({exc}); "
                            "reinstall sketch2face."
                        ) from exc
                    try:
                        self._pipeline = Sketch2Face.from_pretrained(
                            self.checkpoint, device=self.device, refiner=self.refiner
                        )
                    except Sketch2FaceError as exc:  # e.g. CheckpointError: missing model
                        raise ModelUnavailableError(str(exc)) from exc
                    except Exception as exc:  # torch raises many types; name the checkpoint
                        raise ModelUnavailableError(
                            f"loading the model from {self.checkpoint or 'the packaged default'} "
                            f"failed: {exc}; check SKETCH2FACE_CHECKPOINT."
                        ) from exc
                    log.info(
                        "loaded %s in %.0f ms",
                        getattr(self._pipeline, "model_version", "model"),
                        (time.perf_counter() - started) * 1000,
                    )
        return self._pipeline

    def generate(
        self,
        sketch_u8: np.ndarray,
        *,
        refine: bool,
        seed: int | None,
        attributes: dict[str, str] | None = None,
        backdrop: str = DEFAULT_BACKDROP,
    ) -> ModelOutput:
        """Run the pipeline on one sketch (both stages unless ``refine`` is False, on
        ``backdrop``), batched with whatever else is waiting; ValueError for an unknown
        backdrop before anything runs."""
        check_backdrop(backdrop)
        pipe = self.pipeline()
        item = _Pending(
            sketch_u8, refine, seed, tuple(sorted((attributes or {}).items())), backdrop
        )
        with self._queue_lock:
            self._queue.append(item)
        while not item.done.is_set():
            with self._run_lock:
                if item.done.is_set():  # a previous lock holder ran it in its batch
                    break
                with self._queue_lock:
                    batch = [
                        self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))
                    ]
                self._run_batch(pipe, batch)
        if item.error is not None:
            raise item.error
        assert item.output is not None
        return item.output

    def _run_batch(self, pipe: Any, batch: list[_Pending]) -> None:
        """Run queued requests, one pipeline call per (refine, seed, attributes, backdrop)
        group; never raises."""
        groups: dict[_BatchKey, list[_Pending]] = {}
        for item in batch:
            key = (item.refine, item.seed, item.attributes, item.backdrop)
            groups.setdefault(key, []).append(item)
        for (refine, seed, attributes, backdrop), items in groups.items():
            try:
                result = pipe(
                    [it.sketch_u8 for it in items],
                    refine=refine,
                    seed=seed,
                    attributes=dict(attributes),
                    batch_size=len(items),
                    backdrop=backdrop,
                )
                studio = list(getattr(result, "studio", None) or [])
                found = list(getattr(result, "face_found", [True] * len(items)))
                timings = {k: float(v) for k, v in result.timings_ms.items()}
                for i, it in enumerate(items):
                    it.output = ModelOutput(
                        input_u8=result.inputs[i],
                        face_u8=result.faces[i],
                        refined_u8=result.refined[i] if result.refined else None,
                        model_version=str(pipe.model_version),
                        timings_ms=timings,
                        notices=list(result.notices),
                        face_found=bool(found[i]),
                        batch_size=len(items),
                        refiner_version=str(getattr(result, "refiner_version", "") or "")
                        if result.refined and result.refined[i] is not None
                        else "",
                        backdrop=backdrop,
                        studio_u8=studio[i] if studio else None,
                    )
            except Exception as exc:
                if len(items) > 1:  # one bad input must not fail its neighbours: retry singly
                    for it in items:
                        self._run_batch(pipe, [it])
                    continue
                if not isinstance(exc, (InvalidImageError, ModelUnavailableError)):
                    log.exception("generation failed")
                    exc = ModelUnavailableError(f"generation failed: {exc}")
                items[0].error = exc  # re-raised in the requesting thread
            finally:
                for it in items:
                    it.done.set()

    def candidates(
        self,
        sketch_u8: np.ndarray,
        specs: Sequence[CandidateSpec],
        *,
        prepared: bool = False,
        refine: bool = True,
        backdrop: str = DEFAULT_BACKDROP,
    ) -> CandidatesOutput:
        """Render a round with ``sketch2face.candidates``: the sketch is prepared once, then one
        model call per candidate (both stages unless ``refine`` is False, on ``backdrop``), each
        under the run lock, so other users' generations can run between the candidates of a
        long round."""
        from sketch2face.candidates import render_candidates

        check_backdrop(backdrop)
        pipe = self.pipeline()
        try:
            result = render_candidates(
                pipe,
                sketch_u8,
                list(specs),
                prepared=prepared,
                lock=self._run_lock,
                refine=refine,
                backdrop=backdrop,
            )
        except (ValueError, ModelUnavailableError):  # bad input (400) or a clear model error
            raise
        except Exception as exc:
            log.exception("candidate generation failed")
            raise ModelUnavailableError(f"candidate generation failed: {exc}") from exc
        return CandidatesOutput(
            input_u8=result.input_u8,
            faces_u8=[c.image for c in result.candidates],
            model_version=str(pipe.model_version),
            attributes_applied=result.attributes_applied,
            face_found=result.face_found,
            timings_ms=result.timings_ms,
            notices=result.notices,
            refined_u8=[c.refined for c in result.candidates],
            refiner_version=result.refiner_version,
            backdrop=backdrop,
            studio_u8=[c.studio for c in result.candidates if c.studio is not None],
        )

    def refine_available(self) -> bool:
        """Whether refinement works here, without loading anything: once the pipeline is loaded,
        whether it has a refiner; before, whether the refiner file it will load exists
        (``refine.resolve``)."""
        if self._pipeline is not None:
            return getattr(self._pipeline, "refiner", None) is not None
        from sketch2face.refine.resolve import is_off, refiner_configured

        if self.refiner:
            return not is_off(self.refiner) and Path(self.refiner).expanduser().is_file()
        return refiner_configured()

    def check_health(self) -> tuple[bool, str]:
        """Readiness: in process, the model is ready once loaded or before its first load."""
        return True, "loaded" if self.is_loaded else "loads on the first generation"

    def describe(self) -> dict[str, Any]:
        """Mode, load state, whether refinement is available and, once loaded, the SHA-256 of
        the weights file and of the refiner's (for signed provenance; computed once per file)."""
        version = getattr(self._pipeline, "model_version", None)
        return {
            "mode": "in-process",
            "loaded": self.is_loaded,
            "model_version": version,
            "refiner_version": getattr(self._pipeline, "refiner_version", None) or None,
            "refine_available": self.refine_available(),
            "weights_sha256": self._weights_sha256() if self.is_loaded else None,
            "refiner_sha256": self._refiner_sha256() if self.is_loaded else None,
        }

    def _refiner_sha256(self) -> str | None:
        from sketch2face.provenance import refiner_stamp

        refiner = getattr(self._pipeline, "refiner", None)
        return refiner_stamp(refiner)[1] if refiner is not None else None

    def _weights_sha256(self) -> str | None:
        from sketch2face.errors import ProvenanceError
        from sketch2face.provenance import default_checkpoint_path, weights_sha256

        try:
            return weights_sha256(default_checkpoint_path(self.checkpoint))
        except ProvenanceError:
            log.warning("cannot fingerprint the model weights", exc_info=True)
            return None


class RemoteModelClient:
    """Calls ``sketch2face serve-model`` (see :mod:`sketch2face.serving.server`) over HTTP."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 120.0,
        max_concurrent: int = MAX_CONCURRENT_CALLS,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        retry_after_s: float = RETRY_AFTER_FAILURE_S,
    ) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_concurrent = max_concurrent
        self.connect_timeout_s = min(connect_timeout_s, timeout_s)
        self.retry_after_s = retry_after_s
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._down_until = 0.0  # monotonic time before which calls fail at once
        self._token = token
        self._local = threading.local()  # requests.Session is not documented as thread-safe
        self._requests = requests
        self._refine_cache: tuple[float, bool] | None = None  # (monotonic time, answer)

    @property
    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._requests.Session()
            if self._token:
                session.headers["Authorization"] = f"Bearer {self._token}"
        return session

    def generate(
        self,
        sketch_u8: np.ndarray,
        *,
        refine: bool,
        seed: int | None,
        attributes: dict[str, str] | None = None,
        backdrop: str = DEFAULT_BACKDROP,
    ) -> ModelOutput:
        """POST the sketch as PNG (with ``backdrop``: the server puts THE face on it); decode
        the base64 PNGs of the JSON answer."""
        check_backdrop(backdrop)
        data = {"refine": "1" if refine else "0", "backdrop": backdrop, **(attributes or {})}
        if seed is not None:
            data["seed"] = str(seed)
        body = self._post_sketch("generate", sketch_u8, data, "the model server rejected the image")
        images = body["images"]

        def png(name: str) -> np.ndarray | None:
            b64 = images.get(name)
            if b64 is None:
                return None
            return decode_image_bytes(base64.b64decode(b64), name=f"model server {name} image")

        face = png("face")
        model_input = png("input")
        if face is None or model_input is None:
            raise ModelUnavailableError(f"the model server at {self.base_url} sent no face image")
        studio = png("studio") if backdrop == "studio" else None
        self._check_backdrop(body, backdrop, studio is not None)
        return ModelOutput(
            input_u8=model_input,
            face_u8=face,
            refined_u8=png("refined"),
            model_version=str(body.get("model_version", "unknown")),
            timings_ms={k: float(v) for k, v in body.get("timings_ms", {}).items()},
            notices=list(body.get("notices", [])),
            face_found=bool(body.get("face_found", True)),
            batch_size=int(body.get("batch_size", 1)),
            refiner_version=str(body.get("refiner_version") or ""),
            backdrop=backdrop,
            studio_u8=studio,
        )

    def _check_backdrop(self, body: Mapping[str, Any], backdrop: str, placed: bool) -> None:
        """The answer is on the backdrop asked for; else ModelUnavailableError: a model server
        older than backdrops ignores the field and would hand back faces on the networks'
        background, which must never be stored as studio faces."""
        answered = body.get("backdrop", DEFAULT_BACKDROP)
        if answered != backdrop or (backdrop == "studio" and not placed):
            raise ModelUnavailableError(
                f"the model server at {self.base_url} did not put the faces on the {backdrop!r} "
                f"backdrop (it answered {answered!r}; a server older than backdrops? upgrade "
                "it to this version)"
            )

    def _post_sketch(
        self, endpoint: str, sketch_u8: np.ndarray, data: dict[str, str], refused: str
    ) -> dict[str, Any]:
        """POST the sketch as PNG with form ``data`` to ``/v1/<endpoint>``; the JSON answer, or
        InvalidImageError (400, ``refused`` when the server gives no reason) /
        ModelUnavailableError (no answer, or any other status; a 404 means an older server)."""
        import requests

        files = {"sketch": ("sketch.png", io.BytesIO(encode_png(sketch_u8)), "image/png")}
        url = f"{self.base_url}/v1/{endpoint}"
        wait = self._down_until - time.monotonic()
        if wait > 0:
            raise ModelUnavailableError(
                f"the model server at {self.base_url} did not answer a moment ago; "
                f"not asking again for {wait:.0f} s"
            )
        if not self._slots.acquire(timeout=SLOT_WAIT_S):
            raise ModelUnavailableError(
                f"the model server at {self.base_url} is busy: {self.max_concurrent} calls "
                "from this web process are waiting for it"
            )
        try:
            response = self._session.post(
                url, data=data, files=files, timeout=(self.connect_timeout_s, self.timeout_s)
            )
        except requests.RequestException as exc:
            self._down_until = time.monotonic() + self.retry_after_s
            raise ModelUnavailableError(
                f"the model server at {self.base_url} did not answer ({exc}); is "
                "`sketch2face serve-model` running and SKETCH2FACE_MODEL_URL right?"
            ) from exc
        finally:
            self._slots.release()
        self._down_until = 0.0
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 400:
            raise InvalidImageError(str(body.get("error", refused)))
        if response.status_code != 200:
            hint = (
                f" (an older server without /v1/{endpoint}? upgrade it to this version)"
                if response.status_code == 404
                else ""
            )
            raise ModelUnavailableError(
                f"the model server at {self.base_url} answered {response.status_code}{hint}: "
                f"{body.get('error', response.text[:200])}"
            )
        return body

    def candidates(
        self,
        sketch_u8: np.ndarray,
        specs: Sequence[CandidateSpec],
        *,
        prepared: bool = False,
        refine: bool = True,
        backdrop: str = DEFAULT_BACKDROP,
    ) -> CandidatesOutput:
        """POST the sketch and the specs (JSON) to ``/v1/candidates``; decode the faces (and the
        refined ones: none from a server older than refinement of candidates; and with
        ``backdrop="studio"`` the faces on the studio backdrop)."""
        check_backdrop(backdrop)
        data = {
            "prepared": "1" if prepared else "0",
            "refine": "1" if refine else "0",
            "backdrop": backdrop,
            "specs": json.dumps(
                [{"seed": s.seed, "attributes": dict(s.attributes)} for s in specs]
            ),
        }
        body = self._post_sketch(
            "candidates", sketch_u8, data, "the model server refused the round"
        )
        images = body.get("images", {})
        try:
            faces = [
                decode_image_bytes(base64.b64decode(b64), name="model server candidate")
                for b64 in images["faces"]
            ]
            model_input = decode_image_bytes(
                base64.b64decode(images["input"]), name="model server input image"
            )
            refined = [
                None
                if b64 is None
                else decode_image_bytes(base64.b64decode(b64), name="model server refined face")
                for b64 in images.get("refined") or []
            ]
            studio = [
                decode_image_bytes(base64.b64decode(b64), name="model server studio face")
                for b64 in (images.get("studio") or [] if backdrop == "studio" else [])
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelUnavailableError(
                f"the model server at {self.base_url} sent no usable candidate images ({exc})"
            ) from exc
        if len(faces) != len(specs) or len(refined) not in (0, len(specs)):
            raise ModelUnavailableError(
                f"the model server sent {len(faces)} candidates ({len(refined)} refined) for "
                f"{len(specs)} requested"
            )
        self._check_backdrop(body, backdrop, len(studio) == len(specs))
        return CandidatesOutput(
            input_u8=model_input,
            faces_u8=faces,
            model_version=str(body.get("model_version", "unknown")),
            attributes_applied=bool(body.get("attributes_applied", False)),
            face_found=bool(body.get("face_found", True)),
            timings_ms={k: float(v) for k, v in body.get("timings_ms", {}).items()},
            notices=list(body.get("notices", [])),
            refined_u8=refined,
            refiner_version=str(body.get("refiner_version") or ""),
            backdrop=backdrop,
            studio_u8=studio,
        )

    def refine_available(self) -> bool:
        """What the model server's ``/v1/health`` says (``model.refine_available``), asked at most
        once a minute; False while it cannot be reached."""
        now = time.monotonic()
        cached = self._refine_cache
        if cached is not None and now - cached[0] < REFINE_CHECK_INTERVAL_S:
            return cached[1]
        if now < self._down_until:  # it did not answer a moment ago: do not wait on it again
            return False
        try:
            response = self._session.get(
                f"{self.base_url}/v1/health", timeout=min(self.timeout_s, HEALTH_TIMEOUT_S)
            )
            available = bool(response.json().get("model", {}).get("refine_available", False))
        except Exception as exc:  # unreachable or not JSON: offer no refinement for now
            log.warning("model server health check failed: %s", exc)
            available = False
        self._refine_cache = (now, available)
        return available

    def check_health(self) -> tuple[bool, str]:
        """Readiness: whether the model server answers ``/v1/health`` within a few seconds."""
        try:
            response = self._session.get(
                f"{self.base_url}/v1/health", timeout=min(self.timeout_s, HEALTH_TIMEOUT_S)
            )
        except self._requests.RequestException as exc:
            return False, f"no answer: {type(exc).__name__}"
        if response.status_code != 200:
            return False, f"answered {response.status_code}"
        return True, "answers"

    def describe(self) -> dict[str, Any]:
        """Mode and server URL."""
        return {"mode": "remote", "url": self.base_url}


def model_output_to_json(output: ModelOutput) -> dict[str, Any]:
    """The JSON body the model server sends (inverse of ``RemoteModelClient.generate``)."""

    def b64(image_u8: np.ndarray | None) -> str | None:
        return None if image_u8 is None else base64.b64encode(encode_png(image_u8)).decode("ascii")

    return {
        "model_version": output.model_version,
        "timings_ms": output.timings_ms,
        "notices": output.notices,
        "face_found": output.face_found,
        "batch_size": output.batch_size,
        "refiner_version": output.refiner_version or None,
        "backdrop": output.backdrop,
        "images": {
            "input": b64(output.input_u8),
            "face": b64(output.face_u8),
            "refined": b64(output.refined_u8),
            "studio": b64(output.studio_u8),
        },
    }


def candidates_output_to_json(output: CandidatesOutput) -> dict[str, Any]:
    """The JSON body of the model server's ``/v1/candidates`` (inverse of
    ``RemoteModelClient.candidates``)."""
    return {
        "model_version": output.model_version,
        "attributes_applied": output.attributes_applied,
        "face_found": output.face_found,
        "timings_ms": output.timings_ms,
        "notices": output.notices,
        "refiner_version": output.refiner_version or None,
        "backdrop": output.backdrop,
        "images": {
            "input": base64.b64encode(encode_png(output.input_u8)).decode("ascii"),
            "faces": [base64.b64encode(encode_png(f)).decode("ascii") for f in output.faces_u8],
            "refined": [
                None if r is None else base64.b64encode(encode_png(r)).decode("ascii")
                for r in output.refined_u8
            ],
            "studio": [base64.b64encode(encode_png(f)).decode("ascii") for f in output.studio_u8],
        },
    }
