"""Scripts that build the bundled example models."""
