"""The stack's HTTP API served locally: API Gateway HTTP API (payload format 2.0) in front of
its functions' handlers, on 127.0.0.1 only.

The routes are the template's (AWS::ApiGatewayV2::Route: route key, integration's
function, authorization type), matched as API Gateway does: an exact path before one with
variables before a greedy `{proxy+}`, a method before ANY; no match is a 404. Each request
becomes the event API Gateway sends for its route (headers lower-cased, cookies apart,
repeated query values joined by commas, a binary body base64-encoded, path parameters),
and the handler's answer (statusCode, headers, cookies, body, isBase64Encoded) becomes the
response. One request runs at a time per function, as on one Lambda instance (a
resolver keeps the current event in a global).

On a JWT route the `LocalJwtAuthorizer` checks tokens as API Gateway's JWT authorizer
does: a missing or invalid token (signature, issuer, audience, expiry) is answered 401
before the function runs, and a valid token's claims reach it as
requestContext.authorizer.jwt. An AWS_IAM route trusts the local caller (no SigV4); a NONE
route has no authorizer.
The tokens are signed with a local key that `crmjobs token WORKSPACE` uses.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from werkzeug.datastructures import Headers
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from crmjobs_local.context import LambdaContext
from crmjobs_local.template import ResolutionContext, Template, resolve

LOCAL_HOST = "127.0.0.1"
#: Where `crmjobs dev` serves the HTTP API unless told otherwise (--api-port).
DEFAULT_API_PORT = 3000
API_ID = "local"
_PATH_VARIABLE = re.compile(r"\{(\w+)(\+?)\}")
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


# --------------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    key: str  # "GET /unsubscribe", "ANY /{proxy+}"
    function: str  # the integration's function (logical id)
    authorization: str  # AWS_IAM, JWT or NONE

    @property
    def method(self) -> str:
        return self.key.split(" ", 1)[0]

    @property
    def path(self) -> str:
        return self.key.split(" ", 1)[1]

    @property
    def precedence(self) -> tuple[int, int, bool]:
        """Lower first: greedy last, then by path variables, a method before ANY."""
        variables = _PATH_VARIABLE.findall(self.path)
        return (any(plus for _, plus in variables), len(variables), self.method == "ANY")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when the request takes this route, else None."""
        if self.method not in ("ANY", method):
            return None
        pattern, last = "", 0
        for variable in _PATH_VARIABLE.finditer(self.path):
            pattern += re.escape(self.path[last : variable.start()])
            pattern += f"(?P<{variable.group(1)}>{'.+' if variable.group(2) else '[^/]+'})"
            last = variable.end()
        pattern += re.escape(self.path[last:])
        found = re.fullmatch(pattern, path)
        return found.groupdict() if found else None


def _function_of(uri: Any) -> str:
    """The function logical id of an integration's IntegrationUri (!GetAtt F.Arn)."""
    if isinstance(uri, dict) and "Fn::GetAtt" in uri:
        return uri["Fn::GetAtt"][0]
    raise ValueError(f"integration URI {uri!r} is not a function of this template")


def template_routes(template: Template, context: ResolutionContext) -> list[Route]:
    """The template's HTTP API routes, in the order API Gateway tries them."""
    resources = template.resources
    routes = []
    for resource in resources.values():
        if resource.get("Type") != "AWS::ApiGatewayV2::Route":
            continue
        if "Condition" in resource and not context.condition(resource["Condition"]):
            continue
        properties = resource["Properties"]
        target = properties["Target"]
        target_text = target["Fn::Sub"] if isinstance(target, dict) else target
        integration = re.fullmatch(r"integrations/\$\{(\w+)\}", target_text).group(1)
        routes.append(
            Route(
                key=str(resolve(properties["RouteKey"], context)),
                function=_function_of(resources[integration]["Properties"]["IntegrationUri"]),
                authorization=str(resolve(properties.get("AuthorizationType", "NONE"), context)),
            )
        )
    return sorted(routes, key=lambda route: route.precedence)


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


def _utf8_or_none(body: bytes) -> str | None:
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


def http_event(
    request: Request,
    *,
    route_key: str,
    path_parameters: dict[str, str],
    authorizer: dict[str, Any] | None,
    account_id: str,
) -> dict[str, Any]:
    """The HTTP API payload 2.0 event API Gateway builds for this request on its route."""
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
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": request.query_string.decode(),
        "headers": headers,
        "requestContext": {
            "accountId": account_id,
            "apiId": API_ID,
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
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    if path_parameters:
        event["pathParameters"] = path_parameters
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
        text = _utf8_or_none(body) if _is_text(request.content_type) else None
        if text is not None:
            event["body"] = text
        else:  # binary, or a text type whose bytes are not UTF-8
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


@dataclass
class ApiFunction:
    """A function behind a route: its handler and what its Lambda context says."""

    invoke: Callable[[dict[str, Any], Any], Any]
    name: str
    arn: str
    timeout_seconds: int = 29
    memory_mb: int = 256
    lock: threading.Lock = field(default_factory=threading.Lock)


class LocalHttpApi:
    """A WSGI app: each request through its route's function."""

    def __init__(
        self,
        routes: list[Route],
        functions: dict[str, ApiFunction],
        *,
        account_id: str,
        authorizer: LocalJwtAuthorizer | None = None,
    ) -> None:
        jwt_routes = [route.key for route in routes if route.authorization == "JWT"]
        if jwt_routes and authorizer is None:
            raise ValueError(f"routes {jwt_routes} take JWTs: give the local authorizer")
        missing = {route.function for route in routes} - set(functions)
        if missing:
            raise ValueError(f"no handler for {', '.join(sorted(missing))}")
        self.routes = sorted(routes, key=lambda route: route.precedence)
        self.functions = functions
        self.account_id = account_id
        self.authorizer = authorizer

    @classmethod
    def for_stack(cls, stack: Any, authorizer: LocalJwtAuthorizer | None = None) -> LocalHttpApi:
        """The routes of the runtime's template (with its parameters) to its functions."""
        resources = stack.resources
        template = Template.load(stack.template)
        context = template.context(
            region=resources.region,
            account_id=resources.account_id,
            stack_name=resources.stack_name,
            parameters=stack.parameters,
        )
        routes = template_routes(template, context)
        functions = {}
        for logical_id in {route.function for route in routes}:
            function = stack.function(logical_id)
            functions[logical_id] = ApiFunction(
                stack.handler_for(function),
                name=function.name,
                arn=function.arn,
                timeout_seconds=function.timeout_seconds,
                memory_mb=function.memory_mb,
            )
        return cls(routes, functions, account_id=resources.account_id, authorizer=authorizer)

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                return route, parameters
        return None

    def handle(self, request: Request) -> Response:
        found = self._route(request.method, request.path)
        if found is None:
            return Response('{"message":"Not Found"}', status=404, content_type="application/json")
        route, parameters = found
        authorizer: dict[str, Any] | None = None
        if route.authorization == "AWS_IAM":
            authorizer = _iam_authorizer(self.account_id)
        elif route.authorization == "JWT":
            assert self.authorizer is not None
            try:
                authorizer = self.authorizer.authorizer_context(
                    request.headers.get("Authorization")
                )
            except InvalidToken as error:
                return _unauthorized(str(error))
        event = http_event(
            request,
            route_key=route.key,
            path_parameters=parameters,
            authorizer=authorizer,
            account_id=self.account_id,
        )
        function = self.functions[route.function]
        context = LambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
        )
        with function.lock:
            return http_response(function.invoke(event, context))

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
