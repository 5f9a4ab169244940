"""Builds the FastAPI application around the controller's store and scheduler."""

from fastapi import FastAPI

from controller.api import artifacts, devicecontrol, errors, event_stream, health, v0
from controller.api.contract import install_openapi
from controller.api.deps import ApiServices
from controller.api.slashes import EitherSlash


def create_app(services: ApiServices) -> FastAPI:
    app = FastAPI(
        title="Tether",
        version="0.1.0",
        description="Device operations over MQTT. Authenticate with `Authorization: Bearer <key>`, or Basic "
        "with the key's name (or `<tenant>/<name>`, as Cumulocity clients send it) and the key.",
        redirect_slashes=False,  # EitherSlash serves both forms of a path: a redirect loses a POST's body
    )
    app.state.services = services
    app.router.default = EitherSlash(app.router)
    errors.install(app)
    app.include_router(v0.router)
    app.include_router(event_stream.router)
    app.include_router(artifacts.router)
    app.include_router(devicecontrol.router)
    app.include_router(health.router)
    install_openapi(app)
    return app
