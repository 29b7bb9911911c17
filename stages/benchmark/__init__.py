"""The benchmark stage: each measurement in a fresh child process (child.py), timed and summarised (timing.py)."""
