"""SQL state: the source of truth. Every process (control plane, workers) reaches it the same way."""
