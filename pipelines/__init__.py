"""tflite-pipeline's engine: build the stage DAG from config, cache, run, track, report."""

__version__ = "0.1.0"
