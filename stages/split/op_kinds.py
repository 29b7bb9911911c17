"""Op kinds the split stage reasons about, shared by the tail-share check and the selection rule (kept apart
from both so neither imports the other)."""

# Ops that carry a model's learned weights and its arithmetic.
COMPUTE_OPS = {
    "Conv2D",
    "Conv3D",
    "DepthwiseConv2dNative",
    "Conv2DBackpropInput",
    "MatMul",
    "BatchMatMul",
    "BatchMatMulV2",
    "BatchMatMulV3",
    "Einsum",
}
