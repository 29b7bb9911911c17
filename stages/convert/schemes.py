"""The quantization schemes: one entry per variant mode, everything convert, preflight and lineage ask about it.

Adding a scheme is one entry here (plus its converter flags or AEQ recipe function, which the entry names);
`make_converter`, the variant checks, the debugger, preflight's mode/backend check and MLflow lineage read it.
Plain data, no TensorFlow: the engine imports this module before any work.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT = "fp32"  # the plain float conversion that AEQ, the int8_mixed search and the int16x8 table start from


@dataclass(frozen=True)
class Scheme:
    """One quantization mode and how each stage treats it."""

    mode: str
    backend: str  # "converter" (TFLiteConverter) or "aeq" (AI Edge Quantizer on the fp32 .tflite)
    # Integer dtypes a full-integer model computes in (weights, activations); empty: float compute.
    compute: tuple[str, ...] = ()
    # Integer input/output dtypes it can give instead of float32 (`variants.<name>.io_dtype`).
    io_dtypes: tuple[str, ...] = ()
    # Whether its conversion reads the calibration set; None: its recipe decides (AEQ's `need_calibration`).
    calibrated: bool | None = False
    # Converter flags: tf.lite.Optimize.DEFAULT, `target_spec.supported_types` (tf dtype names) and the integer
    # `tf.lite.OpsSet` name of a full-integer mode (which then reads the representative dataset).
    optimize: bool = False
    supported_types: tuple[str, ...] = ()
    ops_set: str | None = None
    # AEQ: the ai_edge_quantizer.recipe function it applies; None for `recipe`, which reads the user's file.
    recipe: str | None = None
    # Per-layer error table (stages/convert/quantization/debugger.py): "per_layer" (QuantizationDebugger) or
    # "accumulated" (each integer tensor against the fp32 model); None: no table.
    debugger: str | None = None
    # The activations' integer range, for the table's range columns.
    activation_range: tuple[int, int] | None = None
    # The activations' integer precision ("int8", "int16"): what a repaired op leaves.
    activations: str | None = None
    # Per-op repair (stages/convert/quantization/repair.py): the precisions an op without a kernel at this
    # scheme's precision may move to, in the order tried; empty: the variant fails naming the op. The converter
    # can only keep an op in float; AEQ can first try int8 activations on it.
    repair: tuple[str, ...] = ()

    @property
    def user_recipe(self) -> bool:
        """Whether the variant names its own AEQ recipe file (`variants.<name>.recipe`)."""
        return self.backend == "aeq" and self.recipe is None


SCHEMES: dict[str, Scheme] = {
    s.mode: s
    for s in (
        Scheme(FLOAT, "converter"),
        Scheme("fp16", "converter", optimize=True, supported_types=("float16",)),
        Scheme("dynamic", "converter", optimize=True),
        Scheme(
            "int8",
            "converter",
            compute=("int8",),
            io_dtypes=("int8", "uint8"),
            calibrated=True,
            optimize=True,
            ops_set="TFLITE_BUILTINS_INT8",
            debugger="per_layer",
            activation_range=(-128, 127),
            activations="int8",
            repair=("float",),
        ),
        Scheme(
            "int16x8",
            "converter",
            compute=("int16", "int8"),
            io_dtypes=("int16",),
            calibrated=True,
            optimize=True,
            ops_set="EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8",
            debugger="accumulated",
            activation_range=(-32767, 32767),
            activations="int16",
            repair=("float",),
        ),
        Scheme("w8", "aeq", recipe="weight_only_wi8_afp32"),
        Scheme("w4", "aeq", recipe="dynamic_wi4_afp32"),
        Scheme("a8w8", "aeq", calibrated=True, recipe="static_wi8_ai8", activations="int8", repair=("float",)),
        Scheme(
            "a16w8", "aeq", calibrated=True, recipe="static_wi8_ai16", activations="int16", repair=("int8", "float")
        ),
        Scheme("recipe", "aeq", calibrated=None),
    )
}
BACKENDS = ("converter", "aeq")


def scheme(mode: str) -> Scheme:
    """The scheme of a mode; a KeyError names the known ones."""
    try:
        return SCHEMES[mode]
    except KeyError:
        raise KeyError(f"unknown quantization mode {mode!r}; known: {', '.join(SCHEMES)}") from None


def modes_for(backend: str) -> tuple[str, ...]:
    """The modes of one backend, in table order."""
    return tuple(m for m, s in SCHEMES.items() if s.backend == backend)


def backend_mismatch(mode: str, backend: str) -> str | None:
    """Why `mode` does not belong to `backend` (one sentence and its fix), or None when it does."""
    known = "; ".join(f"{b}: {', '.join(modes_for(b))}" for b in BACKENDS)
    if mode not in SCHEMES:
        return f"mode `{mode}` is no backend's ({known}). Pick one of those."
    wanted = SCHEMES[mode].backend
    if wanted == backend:
        return None
    return (
        f"mode `{mode}` with backend `{backend}`; mode {mode} belongs to the {wanted} backend ({known}). "
        f"Set backend={wanted} or pick a mode of that backend."
    )
