"""HTTP plumbing shared by the services: RFC 9457 problem details, health, readiness, metrics."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """A domain error that maps to one HTTP problem; subclasses set ``status`` and ``title``."""

    status: int = 400
    title: str = "Bad request"
    #: Vietnamese title, sent when the caller prefers Vietnamese (``Accept-Language: vi``).
    title_vi: str | None = None

    def __init__(self, detail: str, *, detail_vi: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.detail_vi = detail_vi
        self.extra = extra


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


#: Vietnamese titles of the common problems; English stays the default (RFC 9457 ``title``).
VI_TITLES = {
    "Bad request": "Yêu cầu không đúng",
    "Invalid request": "Yêu cầu không hợp lệ",
    "Unauthorized": "Chưa xác thực",
    "Forbidden": "Không có quyền",
    "Not Found": "Không tìm thấy",
    "Method Not Allowed": "Phương thức không được hỗ trợ",
    "Not ready": "Chưa sẵn sàng",
    "Payload too large": "Dữ liệu gửi lên quá lớn",
}
#: Vietnamese messages for pydantic's error types (the field name stays as it is).
VI_ERRORS = {
    "missing": "bắt buộc phải có",
    "extra_forbidden": "trường này không được phép",
    "string_too_short": "quá ngắn",
    "string_too_long": "quá dài",
    "too_short": "quá ít phần tử",
    "too_long": "quá nhiều phần tử",
    "enum": "giá trị không nằm trong danh sách cho phép",
    "literal_error": "giá trị không nằm trong danh sách cho phép",
    "string_pattern_mismatch": "sai định dạng",
    "int_parsing": "phải là số nguyên",
    "bool_parsing": "phải là true hoặc false",
    "date_from_datetime_parsing": "phải là ngày dạng YYYY-MM-DD",
    "date_parsing": "phải là ngày dạng YYYY-MM-DD",
    "greater_than_equal": "quá nhỏ",
    "less_than_equal": "quá lớn",
    "json_invalid": "JSON không hợp lệ",
    "model_attributes_type": "phải là một đối tượng JSON",
    "dict_type": "phải là một đối tượng JSON",
    "list_type": "phải là một danh sách",
    "string_type": "phải là chuỗi ký tự",
}


def prefers_vietnamese(request: Request) -> bool:
    """Whether ``Accept-Language`` ranks Vietnamese above English (English is the default)."""
    best_lang, best_q = "en", 0.0
    for part in request.headers.get("accept-language", "").split(","):
        lang, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = lang.strip().lower().split("-")[0]
        if primary in ("vi", "en") and q > best_q:
            best_lang, best_q = primary, q
    return best_lang == "vi"


def _localised(
    request: Request, response: JSONResponse, title_vi: str | None, detail_vi: str | None
) -> JSONResponse:
    if not prefers_vietnamese(request):
        response.headers["content-language"] = "en"
        return response
    body = orjson.loads(response.body)
    body["title"] = title_vi or VI_TITLES.get(body["title"], body["title"])
    if detail_vi:
        body["detail"] = detail_vi
    localised = JSONResponse(body, status_code=response.status_code, media_type=PROBLEM_JSON)
    localised.headers["content-language"] = "vi"
    return localised


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(req: Request, exc: RequestValidationError) -> JSONResponse:
        # Name each field and say what is wrong; never echo the submitted value (it may identify her).
        errors = [{"field": _field(e["loc"]), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        detail_vi = "; ".join(
            f"{_field(e['loc'])}: {VI_ERRORS.get(e['type'], e['msg'])}" for e in exc.errors()
        )
        return _localised(req, problem(422, "Invalid request", detail, errors=errors), None, detail_vi)

    @app.exception_handler(ProblemError)
    async def _domain(req: Request, exc: ProblemError) -> JSONResponse:
        response = problem(exc.status, exc.title, exc.detail, **exc.extra)
        return _localised(req, response, exc.title_vi, exc.detail_vi)

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _localised(
            req, problem(exc.status_code, str(exc.detail), str(exc.detail)), str(exc.detail), None
        )


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
