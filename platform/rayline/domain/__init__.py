"""Plain-Python rules of the platform: no Ray, no HTTP, no SQL. Unit tests drive them directly."""
