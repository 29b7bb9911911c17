"""The MLflow integration: parent and child runs, sweeps, lineage and logged models (the LiteRT pyfunc), the
registry, dashboards, run recovery, publishing and the Ray cluster callback.
"""
