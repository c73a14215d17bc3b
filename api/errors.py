"""Every error answers JSON {"detail": "<Chinese message naming the field or id>"}."""

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def not_found(kind: str, item_id: str) -> ApiError:
    return ApiError(404, f"{kind} {item_id} 不存在")


def conflict(detail: str) -> ApiError:
    return ApiError(409, detail)


def unprocessable(detail: str) -> ApiError:
    return ApiError(422, detail)


_MESSAGES = {
    "missing": "缺少必填字段",
    "extra_forbidden": "不支持的字段",
    "string_type": "必须是字符串",
    "string_too_short": "长度不能小于 {min_length}",
    "string_too_long": "长度不能超过 {max_length}",
    "string_pattern_mismatch": "格式不符合要求",
    "int_type": "必须是整数",
    "int_parsing": "必须是整数",
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
    "json_invalid": "请求体不是合法的 JSON",
    "finite_number": "必须是有限数值",
}


def _describe(error: dict) -> dict:
    location = [str(part) for part in error.get("loc", ())]
    where = location[0] if location else ""
    field = ".".join(location[1:]) or where
    template = _MESSAGES.get(error.get("type", ""))
    if error.get("type") == "value_error":
        message = str(error.get("ctx", {}).get("error", error.get("msg", "")))
    elif template:
        try:
            message = template.format(**error.get("ctx", {}))
        except (KeyError, IndexError):
            message = template
    else:
        message = error.get("msg", "取值无效")
    return {"location": where, "field": field, "message": message}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_describe(e) for e in exc.errors()]
        summary = "；".join(f"{e['field']}：{e['message']}" for e in errors[:5])
        return JSONResponse({"detail": f"请求参数有误 - {summary}", "errors": errors}, status_code=422)
