"""HTTP API (payload 2.0) events and a Lambda context for calling the trigger function's
handler directly, as API Gateway would."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

from crmjobs_local.context import LambdaContext

HANDLER_FILE = Path(__file__).resolve().parents[2] / "functions" / "trigger_api" / "app.py"
ACCOUNT = "123456789012"


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    claims: dict[str, Any] | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An HTTP API payload 2.0 event for the `ANY /{proxy+}` route; IAM-authorized unless
    JWT `claims` are given."""
    text = raw_body if raw_body is not None else None if body is None else json.dumps(body)
    if text is not None and base64_body:
        text = base64.b64encode(text.encode()).decode()
    authorizer = (
        {"jwt": {"claims": claims, "scopes": None}}
        if claims is not None
        else {"iam": {"accountId": ACCOUNT, "userArn": f"arn:aws:iam::{ACCOUNT}:user/ops"}}
    )
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "ANY /{proxy+}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "api1234567",
            "authorizer": authorizer,
            "domainName": "api.example.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "pytest",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "ANY /{proxy+}",
            "stage": "$default",
            "time": "29/Nov/2026:02:00:00 +0000",
            "timeEpoch": 1795917600000,
        },
        "pathParameters": {"proxy": path.lstrip("/")},
        "isBase64Encoded": base64_body,
    }
    if query:
        event["queryStringParameters"] = query
    if text is not None:
        event["body"] = text
    return event


def lambda_context() -> LambdaContext:
    return LambdaContext(
        function_name="TriggerApiFunction",
        invoked_function_arn=f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:TriggerApiFunction",
        memory_limit_in_mb=256,
        timeout_seconds=29,
    )
