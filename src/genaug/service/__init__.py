"""The REST service: FastAPI app, routes, auth, settings (``genaug serve``)."""
