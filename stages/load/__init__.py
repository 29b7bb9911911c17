"""The load stage and the source model: the format loaders (model/) and input shapes."""
