"""torch initializers and layer defaults (pure JAX)."""
