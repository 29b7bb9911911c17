"""Numpy post-processing tails users can point `split.postprocess._target_` at.

A tail function receives the converted head's outputs as `{cut tensor name: array}` (in the order of
`split.cut_tensors`) plus the keyword arguments from the config, and returns the model's final outputs as
`{output name: array}`. See docs/split.md.
"""
