"""The web page at `/`: plain HTML, CSS and JavaScript from `api/static/`, no build step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["web"])


class _RevalidatedFiles(StaticFiles):
    """Static files a browser checks again on each load (they are few and small), so a new
    release's page never runs with a cached older script."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        return response


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The page: record or pick audio, or type a question, and watch the answer stream in."""
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Serve the page at `/` and its files under `/static/`."""
    app.include_router(router)
    app.mount("/static", _RevalidatedFiles(directory=STATIC_DIR), name="static")
