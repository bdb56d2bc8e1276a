"""The REST API (``/api/v1``): thin FastAPI routes over ``rayline.services``."""
