"""Links in answers (`next`, `previous`, `self`, Location), built on the controller's configured public URL.

The URL a request arrived at names whatever host its client put in the Host header: echoed into links, it would let
any client choose where others following them go (and poison a cache in front of the controller).
"""

from fastapi import Request

from controller.api.deps import services


def here(request: Request, **params: int) -> str:
    """The URL of this request, with `params` in place of those query parameters."""
    url = request.url.include_query_params(**params) if params else request.url
    return _public(request, f"{url.path}?{url.query}" if url.query else url.path)


def route_url(request: Request, name: str, **path_params: str) -> str:
    """The URL of the route `name`, as `request.url_for` gives it but on the public base."""
    return _public(request, str(request.app.url_path_for(name, **path_params)))


def _public(request: Request, path: str) -> str:
    return services(request).public_url.rstrip("/") + path
