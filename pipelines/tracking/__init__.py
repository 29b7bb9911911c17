"""The MLflow integration: the parent and child runs, sweeps, lineage, logged models, the LiteRT pyfunc, the registry, dashboards, run recovery, publishing and the Ray cluster callback."""
