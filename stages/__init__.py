"""Pipeline stages: plain functions of their upstream results and their own config.

Each stage writes only into the `out_dir` the engine gives it and returns a `StageResult`. Stages never
import mlflow or read Hydra's global config; heavy imports (TensorFlow, LiteRT) happen inside them.
"""
