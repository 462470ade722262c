"""mxnet initializers and layer defaults (pure JAX)."""
