"""The trigger HTTP API served locally: API Gateway HTTP API (payload format 2.0) in front of
the trigger function's handler, on 127.0.0.1 only.

Each request becomes the event API Gateway sends for the template's `ANY /{proxy+}` route
(headers lower-cased, cookies apart, repeated query values joined by commas, a binary body
base64-encoded), and the handler's answer (statusCode, headers, cookies, body,
isBase64Encoded) becomes the response. One request runs at a time, as on one Lambda
instance (the handler's resolver keeps the current event in a global).

With a `LocalJwtAuthorizer` the API checks tokens as API Gateway's JWT authorizer does:
a missing or invalid token (signature, issuer, audience, expiry) is answered 401 before
the function runs, and a valid token's claims reach it as requestContext.authorizer.jwt.
The tokens are signed with a local key that `crmjobs token WORKSPACE` uses.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from werkzeug.datastructures import Headers
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from crmjobs_local.context import LambdaContext

LOCAL_HOST = "127.0.0.1"
API_FUNCTION = "TriggerApiFunction"
ROUTE_KEY = "ANY /{proxy+}"
API_ID = "local"
#: The stack parameters that turn the template's JWT authorizer on, for local tokens.
LOCAL_JWT_ISSUER = "https://crmjobs.local/"
LOCAL_JWT_AUDIENCE = "crmjobs-local"
JWT_KEY_FILE = "jwt-signing-key"
_TOKEN_ALGORITHM = "HS256"
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded")


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired or not signed by the local key."""


@dataclass(frozen=True)
class LocalJwtAuthorizer:
    """Signs and checks the local JWTs (HS256 with a key kept in the data dir)."""

    key: str
    issuer: str = LOCAL_JWT_ISSUER
    audience: str = LOCAL_JWT_AUDIENCE
    workspace_claim: str = "workspace_id"

    @classmethod
    def in_data_dir(cls, data_dir: Path, **settings: str) -> LocalJwtAuthorizer:
        """The data dir's key, created (readable by its owner only) on first use."""
        path = Path(data_dir) / JWT_KEY_FILE
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.touch(mode=0o600)
            temporary.write_text(secrets.token_urlsafe(32))
            temporary.replace(path)
        return cls(key=path.read_text().strip(), **settings)

    def issue(
        self, workspace_id: str, *, subject: str = "local-user", ttl_s: int = 12 * 3600
    ) -> str:
        issued = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": issued,
            "exp": issued + ttl_s,
            "scope": "runs",
            self.workspace_claim: workspace_id,
        }
        return jwt.encode(claims, self.key, algorithm=_TOKEN_ALGORITHM)

    def verify(self, token: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self.key,
                algorithms=[_TOKEN_ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None

    def workspace_of(self, token: str) -> str:
        """The workspace a token is scoped to; InvalidToken when it names none."""
        workspace = self.verify(token).get(self.workspace_claim)
        if not workspace:
            raise InvalidToken(f"token has no {self.workspace_claim} claim")
        return str(workspace)

    def authorizer_context(self, authorization: str | None) -> dict[str, Any]:
        """requestContext.authorizer for an Authorization header, as API Gateway fills it:
        claims as strings, scopes from the `scope` claim."""
        if not authorization:
            raise InvalidToken("no Authorization header")
        token = authorization.removeprefix("Bearer ").strip()
        claims = self.verify(token)
        scope = claims.get("scope")
        return {
            "jwt": {
                "claims": {name: _claim_text(value) for name, value in claims.items()},
                "scopes": scope.split() if isinstance(scope, str) else None,
            }
        }


def _claim_text(value: Any) -> str:
    if isinstance(value, list):
        return f"[{' '.join(map(str, value))}]"
    return str(value)


def _iam_authorizer(account_id: str) -> dict[str, Any]:
    """What an IAM-authorized call carries; locally every caller is the account's user."""
    return {
        "iam": {
            "accessKey": "local",
            "accountId": account_id,
            "callerId": "local",
            "cognitoIdentity": None,
            "principalOrgId": None,
            "userArn": f"arn:aws:iam::{account_id}:user/local",
            "userId": "local",
        }
    }


def _is_text(content_type: str | None) -> bool:
    return not content_type or content_type.startswith(_TEXT_TYPES) or "+json" in content_type


def http_event(request: Request, *, authorizer: dict[str, Any], account_id: str) -> dict[str, Any]:
    """The HTTP API payload 2.0 event API Gateway builds for this request."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        if key != "cookie":
            headers[key] = f"{headers[key]},{value}" if key in headers else value
    now = datetime.now(UTC)
    body = request.get_data()
    path = request.path
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": ROUTE_KEY,
        "rawPath": path,
        "rawQueryString": request.query_string.decode(),
        "headers": headers,
        "requestContext": {
            "accountId": account_id,
            "apiId": API_ID,
            "authorizer": authorizer,
            "domainName": request.host,
            "domainPrefix": request.host.split(".")[0].split(":")[0],
            "http": {
                "method": request.method,
                "path": path,
                "protocol": request.environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": request.remote_addr or LOCAL_HOST,
                "userAgent": request.headers.get("User-Agent", ""),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": ROUTE_KEY,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "pathParameters": {"proxy": path.lstrip("/")},
        "isBase64Encoded": False,
    }
    cookies = [
        part.strip() for part in request.headers.get("Cookie", "").split(";") if part.strip()
    ]
    if cookies:
        event["cookies"] = cookies
    if request.args:
        event["queryStringParameters"] = {
            name: ",".join(request.args.getlist(name)) for name in request.args
        }
    if body:
        if _is_text(request.content_type):
            event["body"] = body.decode()
        else:
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def http_response(result: Any) -> Response:
    """The response API Gateway makes of a payload 2.0 function result."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # A result without statusCode is taken as a JSON body with status 200.
        return Response(json.dumps(result), status=200, content_type="application/json")
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    headers = Headers(result.get("headers") or {})
    for cookie in result.get("cookies") or []:
        headers.add("Set-Cookie", cookie)
    return Response(data, status=int(result["statusCode"]), headers=headers)


def _unauthorized(reason: str) -> Response:
    return Response(
        '{"message":"Unauthorized"}',
        status=401,
        content_type="application/json",
        headers={"www-authenticate": f'Bearer error="invalid_token", error_description="{reason}"'},
    )


class LocalHttpApi:
    """A WSGI app: each request through the trigger function's handler."""

    def __init__(
        self,
        invoke: Callable[[dict[str, Any], Any], Any],
        *,
        function_name: str,
        function_arn: str,
        account_id: str,
        timeout_seconds: int = 29,
        memory_mb: int = 256,
        authorizer: LocalJwtAuthorizer | None = None,
    ) -> None:
        self.invoke = invoke
        self.function_name = function_name
        self.function_arn = function_arn
        self.account_id = account_id
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.authorizer = authorizer
        self._one_at_a_time = threading.Lock()

    @classmethod
    def for_stack(cls, stack: Any, authorizer: LocalJwtAuthorizer | None = None) -> LocalHttpApi:
        function = stack.function(API_FUNCTION)
        return cls(
            stack.handler_for(function),
            function_name=function.name,
            function_arn=function.arn,
            account_id=stack.resources.account_id,
            timeout_seconds=function.timeout_seconds,
            memory_mb=function.memory_mb,
            authorizer=authorizer,
        )

    def handle(self, request: Request) -> Response:
        if self.authorizer is None:
            authorizer = _iam_authorizer(self.account_id)
        else:
            try:
                authorizer = self.authorizer.authorizer_context(
                    request.headers.get("Authorization")
                )
            except InvalidToken as error:
                return _unauthorized(str(error))
        event = http_event(request, authorizer=authorizer, account_id=self.account_id)
        context = LambdaContext(
            function_name=self.function_name,
            invoked_function_arn=self.function_arn,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
        )
        with self._one_at_a_time:
            return http_response(self.invoke(event, context))

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        return self.handle(Request(environ))(environ, start_response)


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request (the dev console shows runs, not requests)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class BackgroundServer:
    """A WSGI app served on 127.0.0.1 by Werkzeug's threaded server, in a daemon thread."""

    def __init__(self, app: Callable, port: int = 0) -> None:
        self._server = make_server(
            LOCAL_HOST, port, app, threaded=True, request_handler=_QuietRequestHandler
        )
        self.port = self._server.server_port
        self.url = f"http://{LOCAL_HOST}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> BackgroundServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
