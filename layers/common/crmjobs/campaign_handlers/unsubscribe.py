"""The unsubscribe function: the links' confirmation page (GET) and one-click POST."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Query

from crmjobs.observability import logger, tracer
from crmjobs.services import unsubscribe

#: The unsubscribe links' routes (API Gateway sends only these two to the function); the
#: trigger API's OpenAPI document includes them (crmjobs.api.openapi_document).
unsubscribe_api = APIGatewayHttpResolver(
    enable_validation=True, response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR
)

UnsubscribeToken = Annotated[
    str,
    Query(
        description="The signed token of the link in the message's List-Unsubscribe header",
        min_length=1,
    ),
]
_HTML = "text/html; charset=utf-8"
_PAGE = {"text/html": {"schema": {"type": "string"}}}
_NOT_VALID = {
    "description": "The link is not valid (no token, or a forged or altered one): nothing "
    "changes",
    "content": _PAGE,
}
_NO_AUTHORIZATION = (
    " No IAM or JWT authorization: the token, signed with the stack's key, is the proof."
)


def _page(page: unsubscribe.Page) -> Response[str]:
    return Response(
        status_code=page.status,
        content_type=_HTML,
        headers={"Cache-Control": "no-store"},
        body=page.body,
    )


def _link() -> str:
    """The link as the recipient followed it (the confirmation form posts back to it)."""
    request = unsubscribe_api.current_event
    url = f"https://{request.request_context.domain_name}{request.raw_path}"
    return f"{url}?{request.raw_query_string}" if request.raw_query_string else url


@unsubscribe_api.get(
    "/unsubscribe",
    summary="An unsubscribe link's confirmation page",
    description="A page that asks to confirm and posts back to the link; it changes nothing."
    + _NO_AUTHORIZATION,
    tags=["unsubscribe"],
    operation_id="unsubscribe_page",
    responses={200: {"description": "The confirmation page", "content": _PAGE}, 400: _NOT_VALID},
)
def unsubscribe_page(token: UnsubscribeToken) -> Response[str]:
    return _page(unsubscribe.handle("GET", token, _link()))


@unsubscribe_api.post(
    "/unsubscribe",
    summary="Unsubscribe (one-click, RFC 8058)",
    description="What a mail client posts for `List-Unsubscribe-Post: List-Unsubscribe="
    "One-Click` (its body, `List-Unsubscribe=One-Click`, is not needed): the contact or "
    "prospect is opted out and the address suppressed in its workspace, once; a repeat "
    "changes nothing more." + _NO_AUTHORIZATION,
    tags=["unsubscribe"],
    operation_id="unsubscribe",
    responses={200: {"description": "Unsubscribed", "content": _PAGE}, 400: _NOT_VALID},
)
def unsubscribe_one_click(token: UnsubscribeToken) -> Response[str]:
    return _page(unsubscribe.handle("POST", token, _link()))


@unsubscribe_api.exception_handler(RequestValidationError)
def _no_token(exc: RequestValidationError) -> Response[str]:
    return _page(unsubscribe.handle(unsubscribe_api.current_event.http_method, None, _link()))


def unsubscribe_handler():
    @logger.inject_lambda_context(clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event: dict, context: Any) -> dict:
        return unsubscribe_api.resolve(event, context)

    return handler
