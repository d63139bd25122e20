"""Read dlib's serialised DNN files (``dlib_face_recognition_resnet_model_v1.dat``) without dlib.

The encoding (dlib/serialize.h, dlib/float_details.h, dlib/cuda/tensor.h):

- integer: one control byte (low nibble = number of little-endian magnitude bytes, 0x80 = negative);
- scalar float: two integers, mantissa then exponent, value = m * 2**e;
- string: integer length, then the bytes; bool: one ASCII byte ``'1'``/``'0'``;
- tensor: integer version 2, four integers (n, k, nr, nc), raw little-endian float32 (NCHW);
  an alias tensor (a view into a params tensor) is version 1 and four integers, no data.

A network is a loss layer wrapping nested ``add_layer``s. Each wrapper writes its version and then
recurses into the layer below before writing its own details, so the file holds all versions first
(outermost first), then the input layer, then every layer's details in *forward* order. Tag and
skip layers write only a version and carry no parameters; the topology they encode is a C++
template argument, not data, so the network builder (``dlib_resnet``) supplies it.

Only the layer types of dlib's face recogniser are understood; anything else is a clear error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sketch2face.errors import CheckpointError, WeightsNotFoundError

#: ``add_layer`` versions: 2 for a layer over a layer, 3 for the layer right above the input.
_LAYER_VERSION = 2
_INPUT_LAYER_VERSION = 3
#: ``add_tag_layer`` / ``add_skip_layer`` write version 1 and nothing else.
_TAG_VERSION = 1
#: float_details.h: these exponents stand for +inf, -inf and NaN.
_SPECIAL_EXPONENTS = {32000: float("inf"), 32001: float("-inf"), 32002: float("nan")}


@dataclass(frozen=True)
class DlibLayer:
    """One parameterised or functional layer, as stored.

    Attributes:
        kind: ``con``, ``affine``, ``relu``, ``max_pool``, ``avg_pool``, ``add_prev`` or ``fc``.
        name: dlib's own tag, e.g. ``con_4``.
        params: float32 arrays in dlib's layout: ``con`` weight (O, I, KH, KW) + bias (O,);
            ``affine`` gamma (C,) + beta (C,); ``fc`` weight (inputs, outputs), i.e. y = x @ W.
        attrs: integer hyper-parameters (kernel, stride, padding, filters, ...).
    """

    kind: str
    name: str
    params: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, int] = field(default_factory=dict)

    @property
    def num_params(self) -> int:
        """Number of stored float parameters of this layer."""
        return sum(int(a.size) for a in self.params.values())


@dataclass(frozen=True)
class DlibNetwork:
    """A dlib DNN read from disk: loss settings, input settings and layers in forward order."""

    loss: str
    loss_attrs: dict[str, float]
    input_size: tuple[int, int]  # (rows, cols) of the sized RGB input layer
    input_mean_rgb: tuple[float, float, float]
    layers: list[DlibLayer]
    num_tags: int  # tag/skip layers seen (topology markers, no data)

    def count(self, kind: str) -> int:
        """How many layers of ``kind`` the network has."""
        return sum(1 for layer in self.layers if layer.kind == kind)

    @property
    def num_params(self) -> int:
        """Total number of float parameters."""
        return sum(layer.num_params for layer in self.layers)


class _Cursor:
    """Sequential reader over the file bytes; every read checks bounds (a truncated file)."""

    def __init__(self, data: bytes, source: str) -> None:
        self.data = data
        self.pos = 0
        self.source = source

    def fail(self, what: str) -> CheckpointError:
        return CheckpointError(
            f"{self.source}: {what} at byte {self.pos} of {len(self.data)}; the file is not a "
            "complete dlib face recognition network (reinstall it with "
            "`pip install --force-reinstall face-recognition-models`)."
        )

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"unexpected end of file (wanted {n} bytes)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int_(self) -> int:
        control = self.take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            self.pos -= 1
            raise self.fail(f"invalid integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if control & 0x80 else value

    def float_(self) -> float:
        mantissa, exponent = self.int_(), self.int_()
        if exponent in _SPECIAL_EXPONENTS:
            return _SPECIAL_EXPONENTS[exponent]
        return float(mantissa * 2.0**exponent)

    def str_(self, max_len: int = 256) -> str:
        length = self.int_()
        if not 0 <= length <= max_len:
            raise self.fail(f"implausible string length {length}")
        try:
            return self.take(length).decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail("non-ASCII layer name") from exc

    def bool_(self) -> bool:
        byte = self.take(1)
        if byte not in (b"0", b"1"):
            self.pos -= 1
            raise self.fail(f"invalid bool byte {byte!r}")
        return byte == b"1"

    def tensor(self) -> np.ndarray:
        """A data tensor (version 2), returned flat; shape comes from the alias tensors."""
        version = self.int_()
        if version != 2:
            raise self.fail(f"expected a tensor (version 2), got version {version}")
        dims = [self.int_() for _ in range(4)]
        if any(d < 0 for d in dims):
            raise self.fail(f"negative tensor shape {dims}")
        count = int(np.prod(dims, dtype=np.int64))
        return np.frombuffer(self.take(4 * count), dtype="<f4").astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        """An alias tensor (version 1): only its (n, k, nr, nc) shape."""
        version = self.int_()
        if version != 1:
            raise self.fail(f"expected an alias tensor (version 1), got version {version}")
        n, k, nr, nc = (self.int_() for _ in range(4))
        return n, k, nr, nc


_LayerReader = Callable[[_Cursor, str], DlibLayer]


def _read_con(cur: _Cursor, name: str) -> DlibLayer:
    params = cur.tensor()
    attrs = {
        key: cur.int_()
        for key in (
            "filters",
            "kernel_rows",
            "kernel_cols",
            "stride_y",
            "stride_x",
            "pad_y",
            "pad_x",
        )
    }
    filters_shape, biases_shape = cur.alias(), cur.alias()
    for _ in range(4):  # learning-rate / weight-decay multipliers: training-only
        cur.float_()
    n_weights = int(np.prod(filters_shape))
    n_biases = int(np.prod(biases_shape))
    if params.size != n_weights + n_biases or filters_shape[0] != attrs["filters"]:
        raise cur.fail(
            f"{name}: params of size {params.size} do not match filters {filters_shape} "
            f"+ biases {biases_shape}"
        )
    return DlibLayer(
        "con",
        name,
        {"weight": params[:n_weights].reshape(filters_shape), "bias": params[n_weights:]},
        attrs,
    )


def _read_affine(cur: _Cursor, name: str) -> DlibLayer:
    params = cur.tensor()
    gamma_shape, beta_shape = cur.alias(), cur.alias()
    mode = cur.int_()
    channels = int(np.prod(gamma_shape))
    if params.size != 2 * channels or int(np.prod(beta_shape)) != channels:
        raise cur.fail(f"{name}: {params.size} params for {channels} channels")
    # Stored as all gammas then all betas (batch norm folded in at training end).
    return DlibLayer(
        "affine",
        name,
        {"gamma": params[:channels], "beta": params[channels:]},
        {"channels": channels, "mode": mode},
    )


def _read_pool(kind: str) -> _LayerReader:
    def read(cur: _Cursor, name: str) -> DlibLayer:
        keys = ("kernel_rows", "kernel_cols", "stride_y", "stride_x", "pad_y", "pad_x")
        return DlibLayer(kind, name, {}, {key: cur.int_() for key in keys})

    return read


def _read_fc(cur: _Cursor, name: str) -> DlibLayer:
    num_outputs, num_inputs = cur.int_(), cur.int_()
    params = cur.tensor()
    weights_shape, biases_shape = cur.alias(), cur.alias()
    bias_mode = cur.int_()
    for _ in range(4):  # learning-rate / weight-decay multipliers
        cur.float_()
    n_weights = int(np.prod(weights_shape))
    n_biases = int(np.prod(biases_shape))
    if n_weights != num_inputs * num_outputs or params.size != n_weights + n_biases:
        raise cur.fail(f"{name}: {params.size} params for {num_inputs}x{num_outputs} weights")
    layer_params = {"weight": params[:n_weights].reshape(num_inputs, num_outputs)}
    if n_biases:
        layer_params["bias"] = params[n_weights:]
    return DlibLayer(
        "fc",
        name,
        layer_params,
        {"inputs": num_inputs, "outputs": num_outputs, "bias_mode": bias_mode},
    )


def _read_plain(kind: str) -> _LayerReader:
    def read(cur: _Cursor, name: str) -> DlibLayer:
        return DlibLayer(kind, name)

    return read


_LAYER_READERS: dict[str, _LayerReader] = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "relu_": _read_plain("relu"),
    "add_prev_": _read_plain("add_prev"),
    "max_pool_2": _read_pool("max_pool"),
    "avg_pool_2": _read_pool("avg_pool"),
    "fc_2": _read_fc,
}


def _read_add_layer_state(cur: _Cursor, *, is_input_level: bool) -> None:
    """Skip what ``add_layer`` writes after its layer's details (training state, empty here)."""
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output disabled
        cur.bool_()
    for _ in range(3):  # x_grad, cached_output, params_grad (or grad_final): empty after clean()
        cur.tensor()
    if is_input_level:
        cur.int_()  # _sample_expansion_factor


def parse_dlib_network(data: bytes, source: str = "<bytes>") -> DlibNetwork:
    """Parse a serialised dlib ``loss_metric`` network; must consume exactly all bytes."""
    cur = _Cursor(data, source)
    try:
        loss_version, loss = cur.int_(), cur.str_()
    except CheckpointError:
        loss_version, loss = -1, "?"
    if loss_version != 1 or loss != "loss_metric_2":
        cur.pos = 0
        raise cur.fail(
            f"expected a dlib loss_metric_2 network (version 1), found {loss!r} v{loss_version}"
        )
    loss_attrs = {"margin": cur.float_(), "distance_threshold": cur.float_()}

    # Versions of every wrapper, outermost first, down to the layer right above the input.
    n_layers, n_tags = 0, 0
    while True:
        version = cur.int_()
        if version == _LAYER_VERSION:
            n_layers += 1
        elif version == _TAG_VERSION:
            n_tags += 1
        elif version == _INPUT_LAYER_VERSION:
            n_layers += 1
            break
        else:
            raise cur.fail(f"unexpected layer version {version}")

    input_name = cur.str_()
    if input_name != "input_rgb_image_sized":
        raise cur.fail(f"unsupported input layer {input_name!r}")
    mean_rgb = (cur.float_(), cur.float_(), cur.float_())
    input_size = (cur.int_(), cur.int_())

    layers: list[DlibLayer] = []
    for index in range(n_layers):
        start = cur.pos
        name = cur.str_()
        reader = _LAYER_READERS.get(name)
        if reader is None:
            cur.pos = start
            raise cur.fail(f"unsupported dlib layer {name!r}")
        layers.append(reader(cur, name))
        _read_add_layer_state(cur, is_input_level=index == 0)

    if cur.pos != len(data):
        raise cur.fail(f"{len(data) - cur.pos} unread trailing bytes after the last layer")
    return DlibNetwork(loss, loss_attrs, input_size, mean_rgb, layers, n_tags)


def read_dlib_network(path: str | Path) -> DlibNetwork:
    """Read a dlib DNN ``.dat`` file (e.g. the face recogniser) into layers in forward order."""
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(
            f"dlib network file not found at {path}; install it with "
            "`pip install face-recognition-models`."
        )
    return parse_dlib_network(path.read_bytes(), str(path))
