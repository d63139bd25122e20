"""``ModelClient``: how the web tier reaches the model, in-process or over HTTP.

Both clients take a decoded sketch and return a :class:`ModelOutput`, so ``generation.py`` does not
know which one it talks to. The in-process client loads ONE ``Sketch2Face`` per process, lazily,
on the first generation (never at import or app creation, never per request).
"""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from sketch2face.errors import InvalidImageError, Sketch2FaceError
from sketch2face.imaging import decode_image_bytes, encode_png

log = logging.getLogger(__name__)


class ModelUnavailableError(Sketch2FaceError):
    """The model could not be loaded or the model server could not be reached."""


@dataclass(frozen=True)
class ModelOutput:
    """What one generation returns, whichever client ran it."""

    input_u8: np.ndarray  # the prepared 256x256 sketch the network saw
    face_u8: np.ndarray  # 256x256 generated face
    refined_u8: np.ndarray | None  # 512x512 refined face, or None
    model_version: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    face_found: bool = True  # False: no face detected on the sketch, it was centred and padded
    batch_size: int = 1  # how many queued requests shared the model call


class ModelClient(Protocol):
    """Turns one decoded sketch into a :class:`ModelOutput`."""

    def generate(
        self,
        sketch_u8: np.ndarray,
        *,
        refine: bool,
        seed: int | None,
        attributes: dict[str, str] | None = None,
    ) -> ModelOutput:
        """Run the model (attributes: skin, hair_color, gender); raise InvalidImageError for bad input, ModelUnavailableError otherwise."""
        ...

    def describe(self) -> dict[str, Any]:
        """Small status dict for health pages."""
        ...


@dataclass
class _Pending:
    """One queued request of :class:`InProcessModelClient`."""

    sketch_u8: np.ndarray
    refine: bool
    seed: int | None
    attributes: tuple[tuple[str, str], ...] = ()
    done: threading.Event = field(default_factory=threading.Event)
    output: ModelOutput | None = None
    error: BaseException | None = None


class InProcessModelClient:
    """Runs ``Sketch2Face`` in this process; loaded once, on first use, shared by all threads."""

    def __init__(
        self, checkpoint: str | None = None, device: str | None = None, *, max_batch: int = 8
    ) -> None:
        self.checkpoint = checkpoint
        self.device = device
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
                            self.checkpoint, device=self.device
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
    ) -> ModelOutput:
        """Run the pipeline on one sketch, batched with whatever else is waiting."""
        pipe = self.pipeline()
        item = _Pending(sketch_u8, refine, seed, tuple(sorted((attributes or {}).items())))
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
        """Run queued requests, one pipeline call per (refine, seed) group; never raises."""
        groups: dict[tuple[bool, int | None, tuple[tuple[str, str], ...]], list[_Pending]] = {}
        for item in batch:
            groups.setdefault((item.refine, item.seed, item.attributes), []).append(item)
        for (refine, seed, attributes), items in groups.items():
            try:
                result = pipe(
                    [it.sketch_u8 for it in items],
                    refine=refine,
                    seed=seed,
                    attributes=dict(attributes),
                    batch_size=len(items),
                )
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

    def describe(self) -> dict[str, Any]:
        """Mode and load state."""
        version = getattr(self._pipeline, "model_version", None)
        return {"mode": "in-process", "loaded": self.is_loaded, "model_version": version}


class RemoteModelClient:
    """Calls ``sketch2face serve-model`` (see :mod:`sketch2face.web.model_server`) over HTTP."""

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout_s: float = 120.0
    ) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._token = token
        self._local = threading.local()  # requests.Session is not documented as thread-safe
        self._requests = requests

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
    ) -> ModelOutput:
        """POST the sketch as PNG; decode the base64 PNGs of the JSON answer."""
        import requests

        data = {"refine": "1" if refine else "0", **(attributes or {})}
        if seed is not None:
            data["seed"] = str(seed)
        files = {"sketch": ("sketch.png", io.BytesIO(encode_png(sketch_u8)), "image/png")}
        url = f"{self.base_url}/v1/generate"
        try:
            response = self._session.post(url, data=data, files=files, timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise ModelUnavailableError(
                f"the model server at {self.base_url} did not answer ({exc}); is "
                "`sketch2face serve-model` running and SKETCH2FACE_MODEL_URL right?"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 400:
            raise InvalidImageError(str(body.get("error", "the model server rejected the image")))
        if response.status_code != 200:
            raise ModelUnavailableError(
                f"the model server at {self.base_url} answered {response.status_code}: "
                f"{body.get('error', response.text[:200])}"
            )
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
        return ModelOutput(
            input_u8=model_input,
            face_u8=face,
            refined_u8=png("refined"),
            model_version=str(body.get("model_version", "unknown")),
            timings_ms={k: float(v) for k, v in body.get("timings_ms", {}).items()},
            notices=list(body.get("notices", [])),
            face_found=bool(body.get("face_found", True)),
            batch_size=int(body.get("batch_size", 1)),
        )

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
        "images": {
            "input": b64(output.input_u8),
            "face": b64(output.face_u8),
            "refined": b64(output.refined_u8),
        },
    }
