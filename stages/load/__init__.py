"""The load stage and the source model: one loader per format (model/), input shapes, and `model.access`,
the one way every stage gets the whole model or the head up to the split's cut.
"""
