"""The client side of Rayline: importable without Ray, FastAPI or the server's settings."""
