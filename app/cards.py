"""Model cards: what a model in ``models/`` is, how it was made, and whether the file matches.

``models/<id>.onnx`` sits beside ``models/<id>.json``. The card is written by the search's single
export function (``search.export``) and read here, torch-free, by the engine and the viewer. Before a
model is loaded its sha256 and input shape are checked against the card; a mismatch is one clear
error naming the file and the problem.

Card fields (JSON): ``id``, ``modality`` (echo|cine), ``role`` (seg|qc), ``method``
(segqc-hw|msnas-hw|rtdnas|baseline-...), ``input`` {name, shape, layout, dtype, normalisation},
``outputs`` [{name, shape, description}], ``classes`` {"0": "background", ...}, ``genotype`` (null
for baselines), ``metrics`` {dice {per_class, mean}, qc_mae, qc_pearson, latency_ms {p50, p95}, fps,
hardware, runtime, flops, params, and for clip models ``dice_newest_frame`` {per_class, mean}: the Dice
of the newest position of the app's window, the one the app shows (``ModelCard.app_dice``)}, ``data``
{source, split, seed}, ``onnx_sha256``, ``created``,
and optionally ``pairs_with`` (a seg card names its QC model id), ``clip_length`` (cine: frames per
inference, 1 for per-frame models), ``echo_mode`` (echo only: ``"contrast"``, contrast echo with the
myocardium labelled, or ``"bmode"``, B-mode echo labelled as CAMUS: 1 LV, 2 myocardium, 3 LA; an echo
card without it is ``"contrast"``), ``quantization`` (null or a description), ``notes``, and
``meets_realtime`` (``app.realtime.REALTIME`` applied to the card's own ``metrics``, written by the
search's card writer), and ``streaming`` (a causal cine model run one frame at a time with its past as
explicit state tensors, ``search.export.streaming``; parsed and checked by :func:`parse_streaming`):
``{"frame_input": "frame", "probs_output": "probs", "states": [{"input": "state_0", "output":
"state_out_0", "shape": [1, C, k, H, W], "init": 0.0 | "-inf"}, ...]}``.
Search-side fields the app does not read: ``architecture`` (typed, ``search.build_from_card`` rebuilds
the network from it) and ``preprocessing`` (the contract ``app.engine.preprocess`` implements, in words).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from app.realtime import REALTIME, RealtimeRule

# The mark and the words beside a clip model's Dice where it is ``metrics.dice_newest_frame`` (``ModelCard.app_dice``).
NEWEST_FRAME_MARK = "n"
NEWEST_FRAME_NOTE = "clip models: Dice of the newest frame, as the app shows it"

REQUIRED_FIELDS = ("id", "modality", "role", "method", "input", "outputs", "classes", "metrics", "data", "onnx_sha256")
ECHO_MODES = ("contrast", "bmode")  # the card field ``echo_mode`` (``app.data.echo_mode`` detects a recording's)
DEFAULT_ECHO_MODE = "contrast"      # an echo card without ``echo_mode`` (every card shipped before the field)


class ModelCardError(ValueError):
    """A card that is missing, malformed, or disagrees with its ONNX file."""

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# (resolved path, size, mtime_ns) -> sha256: a file is hashed again only when it changed.
_DIGESTS: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: Path) -> str:
    """``sha256_of`` remembered for this process while the file's size and mtime stay the same."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of(path)
    return _DIGESTS[key]


@dataclass(frozen=True)
class Timing:
    """How fast a model (or a seg + QC pair run back to back) is: the figures the real-time rule reads.

    Attributes:
        p50_ms: Median latency of one inference, ms.
        p95_ms: 95th-percentile latency, ms.
        fps: Sequential throughput, frames (inferences) per second.
    """

    p50_ms: float
    p95_ms: float
    fps: float

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> "Timing | None":
        """From a card's ``metrics`` (``latency_ms`` {p50, p95, mean}, ``fps``); None without a p95.

        A card without ``fps`` gets ``1000 / mean`` (else ``/ p50``, else ``/ p95``) ms.
        """
        lat = metrics.get("latency_ms")
        if not isinstance(lat, Mapping) or not _finite(lat.get("p95")):
            return None
        p95 = float(lat["p95"])
        p50 = float(lat["p50"]) if _finite(lat.get("p50")) else p95
        fps = metrics.get("fps")
        if not _finite(fps):
            mean = next((float(lat[k]) for k in ("mean", "p50", "p95") if _finite(lat.get(k))), p95)
            fps = 1000.0 / mean if mean > 0 else math.inf
        return cls(p50_ms=p50, p95_ms=p95, fps=float(fps))

    def then(self, other: "Timing") -> "Timing":
        """This model followed by ``other`` on every frame: latencies add, throughput is the harmonic sum."""
        rate = 0.0 if self.fps <= 0 or other.fps <= 0 else 1.0 / (1.0 / self.fps + 1.0 / other.fps)
        return Timing(self.p50_ms + other.p50_ms, self.p95_ms + other.p95_ms, rate)

    def meets(self, rule: RealtimeRule = REALTIME) -> bool:
        """Whether these figures satisfy the real-time rule."""
        return rule.meets(self.p95_ms, self.fps)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def metric_mean(value: Any) -> float | None:
    """``value["mean"]`` as a float when ``value`` is a metric object with a finite mean, else None."""
    mean = value.get("mean") if isinstance(value, Mapping) else None
    return float(mean) if _finite(mean) else None


@dataclass(frozen=True)
class ModelCard:
    """A parsed model card plus the paths of its files."""

    raw: dict[str, Any]
    card_path: Path
    onnx_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.raw["id"]

    @property
    def modality(self) -> str:
        return self.raw["modality"]

    @property
    def role(self) -> str:
        return self.raw["role"]

    @property
    def method(self) -> str:
        return self.raw["method"]

    @property
    def input_name(self) -> str:
        return self.raw["input"]["name"]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.raw["input"]["shape"])

    @property
    def normalisation(self) -> dict[str, Any]:
        return dict(self.raw["input"].get("normalisation", {}))

    @property
    def classes(self) -> dict[int, str]:
        return {int(k): v for k, v in self.raw["classes"].items()}

    @property
    def clip_length(self) -> int:
        return int(self.raw.get("clip_length", 1))

    @property
    def echo_mode(self) -> str | None:
        """Echo: the kind of echo the model was made for, ``"contrast"`` (the default) or ``"bmode"``; cine: None."""
        if self.modality != "echo":
            return None
        return self.raw.get("echo_mode") or DEFAULT_ECHO_MODE

    @property
    def pairs_with(self) -> str | None:
        return self.raw.get("pairs_with")

    @property
    def streaming(self) -> "StreamingSpec | None":
        """The streaming contract of a causal model run frame by frame (None: a clip / per-frame model)."""
        value = self.raw.get("streaming")
        return None if value is None else parse_streaming(value, self.card_path)

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.raw.get("metrics", {}))

    @property
    def is_clip_model(self) -> bool:
        """Whether the app runs this model on a window of several frames: input ``(1, C, T, H, W)`` with
        T > 1 and no ``streaming`` (``app.engine.stages.SegStage`` then keeps a T-frame sliding window)."""
        shape = self.raw["input"].get("shape") if isinstance(self.raw.get("input"), Mapping) else None
        return (isinstance(shape, list) and len(shape) == 5 and isinstance(shape[2], int) and shape[2] > 1
                and self.raw.get("streaming") is None)

    @property
    def newest_frame_dice(self) -> float | None:
        """A clip model's ``metrics.dice_newest_frame.mean``; None for other models or a card without it.

        A clip model (``is_clip_model``) is run by the app on the window ending at each arriving frame
        and shows only the window's newest position, whereas its card's ``metrics.dice`` averages every
        position of its test clips.
        """
        if not self.is_clip_model:
            return None
        return metric_mean(self.metrics.get("dice_newest_frame"))

    @property
    def app_dice(self) -> float | None:
        """The mean Dice that compares models, as the app shows them: the one rule for every table and choice.

        ``newest_frame_dice`` where the card has it (a clip model), else ``metrics.dice.mean``
        (per-frame and streaming models: that is already the Dice of each newest frame); None
        without either.
        """
        newest = self.newest_frame_dice
        return newest if newest is not None else metric_mean(self.metrics.get("dice"))

    @property
    def timing(self) -> Timing | None:
        """The latency and throughput measured when the card was written (None: not measured)."""
        return Timing.from_metrics(self.metrics)

    def check_file(self) -> "ModelCard":
        """Check the ONNX file exists and its sha256 matches the card (hashed once per process and file version).

        Raises:
            ModelCardError: The file is missing or its hash differs from the card's ``onnx_sha256``.
        """
        if not self.onnx_path.is_file():
            raise ModelCardError(self.onnx_path, "model file is missing (the card says it should be here)")
        digest = cached_sha256(self.onnx_path)
        if digest != self.raw["onnx_sha256"]:
            raise ModelCardError(
                self.onnx_path,
                f"sha256 {digest[:12]}... does not match its card {self.card_path.name} "
                f"({str(self.raw['onnx_sha256'])[:12]}...): the file was changed or the card is stale",
            )
        return self

    def verify(self) -> "ModelCard":
        """Check the ONNX file exists, its hash matches, and its input shape agrees with the card."""
        self.check_file()
        shape = onnx_input_shape(self.onnx_path, self.input_name)
        card_shape = self.input_shape
        if len(shape) != len(card_shape) or any(
            isinstance(a, int) and a != b for a, b in zip(shape, card_shape)
        ):
            raise ModelCardError(
                self.onnx_path, f"input {self.input_name!r} has shape {shape} but the card says {list(card_shape)}"
            )
        return self


def onnx_input_shape(onnx_path: Path, input_name: str) -> tuple[int | str, ...]:
    """Read an input's shape from an ONNX file with onnxruntime (no onnx package needed)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelCardError(onnx_path, f"not a loadable ONNX model: {exc}") from None
    for inp in sess.get_inputs():
        if inp.name == input_name:
            return tuple(d if isinstance(d, int) else str(d) for d in inp.shape)
    names = [i.name for i in sess.get_inputs()]
    raise ModelCardError(onnx_path, f"has no input named {input_name!r} (inputs: {names})")


@dataclass(frozen=True)
class StreamState:
    """One state tensor of a streaming model: fed as ``input``, returned updated as ``output``.

    Attributes:
        input: ONNX input name (``state_<i>``).
        output: ONNX output name (``state_out_<i>``), fed back as ``input`` with the next frame.
        shape: Static shape.
        init: The value of every element before the first frame (0.0, or -inf for max pools).
    """

    input: str
    output: str
    shape: tuple[int, ...]
    init: float


@dataclass(frozen=True)
class StreamingSpec:
    """A card's ``streaming`` field: one call takes the new frame and the states, returns probs and new states.

    Attributes:
        frame_input: The input the new preprocessed frame goes to (the card's ``input``, ``(1, C, 1, H, W)``).
        probs_output: The output with the new frame's probabilities ``(1, K, 1, H, W)``.
        states: The states, in the graph's order.
    """

    frame_input: str
    probs_output: str
    states: tuple[StreamState, ...]


def _stream_init(value: Any) -> float | None:
    if isinstance(value, str) and value.strip().lower() in ("-inf", "-infinity"):
        return -math.inf
    return float(value) if _finite(value) else None


def parse_streaming(value: Any, where: object = "card") -> StreamingSpec:
    """The typed ``streaming`` field of a card; ``ModelCardError`` names what is wrong."""
    if not isinstance(value, Mapping):
        raise ModelCardError(where, f"streaming must be an object, got {type(value).__name__}")
    frame_input, probs_output = value.get("frame_input"), value.get("probs_output", "probs")
    if not isinstance(frame_input, str) or not frame_input or not isinstance(probs_output, str) or not probs_output:
        raise ModelCardError(where, "streaming needs a frame_input name (and probs_output, if given, a name)")
    states = value.get("states")
    if not isinstance(states, list) or not states:
        raise ModelCardError(where, "streaming.states must be a non-empty list")
    parsed, names = [], {frame_input, probs_output}
    for i, st in enumerate(states):
        if not isinstance(st, Mapping):
            raise ModelCardError(where, f"streaming.states[{i}] must be an object")
        inp, out, shape, init = st.get("input"), st.get("output"), st.get("shape"), _stream_init(st.get("init"))
        if not isinstance(inp, str) or not isinstance(out, str) or not inp or not out:
            raise ModelCardError(where, f"streaming.states[{i}] needs input and output names")
        if inp in names or out in names or inp == out:
            raise ModelCardError(where, f"streaming.states[{i}]: names {inp!r} / {out!r} are used twice")
        names |= {inp, out}
        if not isinstance(shape, list) or not shape or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise ModelCardError(where, f"streaming.states[{i}].shape must list positive integers, got {shape!r}")
        if init is None:
            raise ModelCardError(where, f"streaming.states[{i}].init must be a number or \"-inf\", got {st.get('init')!r}")
        parsed.append(StreamState(inp, out, tuple(shape), init))
    return StreamingSpec(frame_input, probs_output, tuple(parsed))


def load_card(card_path: Path | str) -> ModelCard:
    """Parse a card JSON file and check its required fields (not the ONNX file: see ``verify``)."""
    card_path = Path(card_path)
    try:
        raw = json.loads(card_path.read_text())
    except FileNotFoundError:
        raise ModelCardError(card_path, "model card is missing") from None
    except json.JSONDecodeError as exc:
        raise ModelCardError(card_path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(raw, dict):
        raise ModelCardError(card_path, "a model card must be a JSON object")
    missing = [f for f in REQUIRED_FIELDS if f not in raw]
    if missing:
        raise ModelCardError(card_path, f"model card lacks required fields: {', '.join(missing)}")
    if raw["modality"] not in ("echo", "cine"):
        raise ModelCardError(card_path, f"unknown modality {raw['modality']!r}")
    if raw["role"] not in ("seg", "qc"):
        raise ModelCardError(card_path, f"unknown role {raw['role']!r}")
    mode = raw.get("echo_mode")
    if mode is not None and raw["modality"] != "echo":
        raise ModelCardError(card_path, f"echo_mode {mode!r} on a {raw['modality']} card (only echo cards have one)")
    if mode is not None and mode not in ECHO_MODES:
        raise ModelCardError(card_path, f"unknown echo_mode {mode!r} (use {' or '.join(ECHO_MODES)}; none means contrast)")
    if raw.get("streaming") is not None:
        spec = parse_streaming(raw["streaming"], card_path)
        frame = raw["input"].get("name") if isinstance(raw["input"], Mapping) else None
        if spec.frame_input != frame:
            raise ModelCardError(card_path, f"streaming.frame_input {spec.frame_input!r} is not the card's input {frame!r}")
    return ModelCard(raw=raw, card_path=card_path, onnx_path=card_path.with_suffix(".onnx"))


def default_models_dir() -> Path:
    """``models/`` beside the package (a source checkout), inside a bundle, or installed by the wheel."""
    import sys

    here = Path(__file__).resolve().parent
    candidates = [
        here.parent / "models",
        Path(getattr(sys, "_MEIPASS", here.parent)) / "models",
        Path(sys.prefix) / "share" / "cardiac-rt" / "models",
    ]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def discover(models_dir: Path | str | None = None) -> list[ModelCard]:
    """All cards in a folder, sorted by id (unverified: call ``verify`` before loading)."""
    models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
    return sorted((load_card(p) for p in models_dir.glob("*.json")), key=lambda c: c.id)
