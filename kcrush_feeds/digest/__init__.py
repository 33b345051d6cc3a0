"""The weekly digest: what is new, its sections, and the composed email."""
