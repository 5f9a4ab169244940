"""Probes and metrics: GET /healthz (the process answers), /readyz (it can do its job), /metrics (Prometheus).

The probes need no key, and say nothing but whether the controller is up; /metrics takes a `read` key, as every
other read does (Prometheus sends it with `authorization: {credentials: ...}`).
"""

import sqlite3

import psycopg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from controller.api.auth import Reader
from controller.api.contract import errors
from controller.api.deps import services
from controller.errors import StorageUnavailable

router = APIRouter()


class Health(BaseModel):
    status: str
    """`ok`, or what is wrong."""


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """200 while the controller's REST API answers."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={
        503: {
            "model": Health,
            "description": "Not connected to the broker, or the database does not answer or its disk is full.",
        }
    },
)
async def readyz(request: Request) -> Response:
    """200 when the controller is connected to its broker and can read and write its database; 503 with the reason
    otherwise (a full disk counts until space is freed)."""
    found = services(request)
    try:
        await found.database.read(lambda store: store.conn.execute("SELECT 1").fetchone())
    except (sqlite3.Error, psycopg.Error, StorageUnavailable) as err:
        return JSONResponse(Health(status=f"database: {err}").model_dump(), status_code=503)
    if (problem := found.space.problem()) is not None:
        return JSONResponse(Health(status=f"database: {problem}").model_dump(), status_code=503)
    if not found.broker_connected():
        return JSONResponse(Health(status="not connected to the MQTT broker").model_dump(), status_code=503)
    return JSONResponse(Health(status="ok").model_dump())


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition.",
            "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
        },
        **errors(401),
    },
)
async def metrics(request: Request, _: Reader) -> Response:
    """Operations by state, commands of unfinished operations by status, devices and devices online, whether the
    broker is connected, commands published, statuses ingested and refused, and dispatch-to-final latency."""
    metrics = services(request).metrics
    # The fleet's gauges are counted with SQL: on a reading connection, as every read is.
    return Response(await services(request).database.read(metrics.exposition), media_type=CONTENT_TYPE_LATEST)
