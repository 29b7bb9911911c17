"""The split stage: the graph cut into a convertible head and a tail, the tail's runner, and the
converter's verdict on the head.
"""
