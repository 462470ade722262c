"""keras initializers and layer defaults (pure JAX)."""
