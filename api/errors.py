"""Every error answers JSON {"detail": "<Chinese message naming the field or id>"}; 422s add "errors"."""

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ltm.vocabulary import field_label

SHOWN_ID_LENGTH = 64


class ErrorBody(BaseModel):
    detail: str = Field(description="中文错误说明")


class FieldError(BaseModel):
    location: str = Field(description="出错的位置：body、query 或 path")
    field: str = Field(description="出错的字段，嵌套字段用点号连接，例如 lines.0.message")
    label: str | None = Field(None, description="字段的中文名，例如 日志第 1 项的消息")
    message: str


class ValidationErrorBody(BaseModel):
    detail: str = Field(description="中文错误说明，列出出错的字段")
    errors: list[FieldError] = Field(default_factory=list, description="逐个字段的错误")


class Refusal(Exception):
    """The API refuses a request: answered as JSON {"detail": …} with this status (the SDK raises ApiError)."""

    def __init__(
        self, status_code: int, detail: str, errors: list[dict] | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = headers
        self.errors = errors


def shown(item_id: str) -> str:
    """An id as quoted back in a message: a hostile id is not echoed at full length."""
    return item_id if len(item_id) <= SHOWN_ID_LENGTH else item_id[:SHOWN_ID_LENGTH] + "…"


def not_found(kind: str, item_id: str) -> Refusal:
    return Refusal(404, f"{kind} {shown(item_id)} 不存在")


def conflict(detail: str) -> Refusal:
    return Refusal(409, detail)


def unprocessable(detail: str, field: str | None = None, location: str = "body") -> Refusal:
    errors = [{"location": location, "field": field, "label": field_label(field), "message": detail}] if field else None
    return Refusal(422, detail, errors)


def invalid_field(location: str, field: str, message: str) -> Refusal:
    """A 422 shaped like the ones request validation answers."""
    error = {"location": location, "field": field, "label": field_label(field), "message": message}
    return Refusal(422, f"请求参数有误 - {error['label']}：{message}", [error])


_DOCUMENTED = {
    401: (ErrorBody, "需要访问令牌，或令牌无效、已吊销（认证开启时）"),
    403: (ErrorBody, "令牌有效，但其角色或项目成员身份不允许这个操作"),
    404: (ErrorBody, "项目、运行或工件不存在（格式不对的 ID 同样按不存在处理）"),
    409: (ErrorBody, "与当前状态冲突，例如项目名称已存在、运行已结束或项目已归档"),
    410: (ErrorBody, "工件已登记，但它的文件已不存在"),
    413: (ErrorBody, "请求体过大：日志与指标批量写入上限 16 MiB，其余请求上限 1 MiB"),
    415: (ErrorBody, "请求体不是 JSON（Content-Type 应为 application/json）"),
    422: (ValidationErrorBody, "请求参数有误：detail 与 errors 指出出错的字段"),
    503: (ErrorBody, "编排服务不可用，未做任何修改"),
}
BODY_ERRORS = (413, 415, 422)


def responses(*codes: int) -> dict:
    """OpenAPI `responses=` for the error answers an operation can give, with their JSON shapes."""
    return {code: {"model": _DOCUMENTED[code][0], "description": _DOCUMENTED[code][1]} for code in codes}


_MESSAGES = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不支持的字段",
    "string_type": "必须是字符串",
    "string_unicode": "必须是合法的 Unicode 字符串",
    "string_too_short": "长度不能小于 {min_length}",
    "string_too_long": "长度不能超过 {max_length}",
    "string_pattern_mismatch": "格式不符合要求",
    "int_type": "必须是整数",
    "int_parsing": "必须是整数",
    "int_parsing_size": "整数位数过多",
    "int_from_float": "必须是整数",
    "float_type": "必须是数字",
    "float_parsing": "必须是数字",
    "bool_type": "必须是布尔值",
    "bool_parsing": "必须是布尔值",
    "greater_than": "必须大于 {gt}",
    "greater_than_equal": "必须大于或等于 {ge}",
    "less_than": "必须小于 {lt}",
    "less_than_equal": "必须小于或等于 {le}",
    "enum": "取值必须是 {expected} 之一",
    "literal_error": "取值必须是 {expected} 之一",
    "dict_type": "必须是 JSON 对象",
    "model_type": "必须是 JSON 对象",
    "model_attributes_type": "必须是 JSON 对象",
    "list_type": "必须是数组",
    "too_long": "元素数量不能超过 {max_length}",
    "too_short": "元素数量不能少于 {min_length}",
    "datetime_type": "必须是 ISO 8601 时间",
    "datetime_parsing": "必须是 ISO 8601 时间",
    "datetime_from_date_parsing": "必须是 ISO 8601 时间",
    "datetime_object_invalid": "必须是 ISO 8601 时间",
    "json_invalid": "请求体不是合法的 JSON（第 {position} 个字符附近）",
    "finite_number": "必须是有限数值",
}


_UNION_MEMBER = re.compile(r"[a-z][a-z-]*\[.*\]")  # pydantic names the union member it tried, e.g. literal['a']


def _field_error(error: dict) -> dict:
    location = [str(part) for part in error.get("loc", ()) if not _UNION_MEMBER.fullmatch(str(part))]
    where = location[0] if location else ""
    field = ".".join(location[1:]) or where
    kind = error.get("type", "")
    ctx = dict(error.get("ctx") or {})
    if isinstance(ctx.get("expected"), str):  # pydantic lists choices in English: 'a', 'b' or 'c'
        ctx["expected"] = ctx["expected"].replace(" or ", "、").replace(", ", "、")
    if kind == "json_invalid":  # FastAPI puts the 0-based character offset where a field name would be
        offset = error.get("loc", ())[1:2]
        field, ctx["position"] = where, offset[0] + 1 if offset and isinstance(offset[0], int) else "?"
    template = _MESSAGES.get(kind)
    if kind == "value_error":
        message = str(ctx.get("error", error.get("msg", "")))
    elif template:
        try:
            message = template.format(**ctx)
        except (KeyError, IndexError):
            message = template.split("（")[0]
    else:
        message = f"取值无效（{error.get('msg', kind)}）"
    return {"location": where, "field": field, "label": field_label(field), "message": message}


def validation_response(errors: list[dict]) -> JSONResponse:
    summary = "；".join(f"{e.get('label') or field_label(e['field'])}：{e['message']}" for e in errors[:5])
    return JSONResponse({"detail": f"请求参数有误 - {summary}", "errors": errors}, status_code=422)


def _http_error_detail(request: Request, exc: HTTPException) -> str:
    path = request.url.path if len(request.url.path) <= 200 else request.url.path[:200] + "…"
    if exc.status_code == 404:
        return f"路径 {path} 不存在"
    if exc.status_code == 405:
        return f"路径 {path} 不支持 {request.method} 请求"
    return str(exc.detail)


def install(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def api_error(_: Request, exc: Refusal) -> JSONResponse:
        body = {"detail": exc.detail} if exc.errors is None else {"detail": exc.detail, "errors": exc.errors}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response([_field_error(e) for e in exc.errors()])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI could not decode a JSON body that json.loads chokes on beyond a syntax error:
            # nesting deeper than Python's recursion limit, an integer with more than 4,300 digits.
            return validation_response(
                [{"location": "body", "field": "body", "message": "请求体无法解析为 JSON（嵌套过深或数字位数过多）"}]
            )
        return JSONResponse(
            {"detail": _http_error_detail(request, exc)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def server_error(_: Request, __: Exception) -> JSONResponse:
        """A bug still answers JSON, without internals; Starlette logs the traceback after this returns."""
        return JSONResponse({"detail": "服务器内部错误，请联系管理员查看 API 日志"}, status_code=500)
