"""The engine: build the stage DAG from config, preflight it, run each stage in a worker process under its
cache key, apply the gates, and name the errors.
"""
