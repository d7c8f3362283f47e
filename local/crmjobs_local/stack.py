"""The embedded local runtime: the whole application in one process, no AWS, no Docker.

`LocalRuntime` starts moto (a server on 127.0.0.1, or in-process for tests), provisions
everything from template.yaml, routes Step Functions' Lambda calls and every queue's
messages to the functions' handlers in-process, fires schedules and polls table streams.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crmjobs import config
from crmjobs.adapters import aws
from crmjobs_local import moto_dynamodb
from crmjobs_local.context import LambdaContext, load_handler
from crmjobs_local.event_sources import BatchOutcome, SqsEventSource
from crmjobs_local.http_api import DEFAULT_API_PORT, LOCAL_HOST
from crmjobs_local.outbox import Outbox, verify_sender
from crmjobs_local.project import default_data_dir, find_template
from crmjobs_local.provision import LocalFunction, LocalResources, NotProvisioned, provision
from crmjobs_local.schedules import FireRecord, LocalScheduler
from crmjobs_local.sfn_bridge import LambdaBridge
from crmjobs_local.streams import StreamEventSource
from crmjobs_local.template import DynamoDbStreamEventSource, OtherEventSource, Template
from crmjobs_local.template import SqsEventSource as SqsEventConfig

#: The local sender domain, verified at start so every address of it can send.
LOCAL_MAIL_DOMAIN = "crmjobs.local"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
#: Locally, the embedded backends replace Bedrock and OpenSearch (chosen by configuration).
LOCAL_SETTINGS = {
    "EMBEDDINGS_BACKEND": "local",
    "VECTOR_BACKEND": "local",
    "POWERTOOLS_TRACE_DISABLED": "true",
    # EMF metrics are CloudWatch's; locally they would only clutter the output.
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}
#: Parameter values a local stack gets unless told otherwise (when the template declares
#: them): moto has no SES GetAccount, so sends are paced at this many messages per second.
LOCAL_PARAMETERS = {"MaxSendRate": "50"}
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalRuntime:
    """The application running locally; use as a context manager or start()/stop().

    By default the template is the project's (found from the current folder upward, see
    `crmjobs_local.project`) and local state lives in `.crmjobs` beside it. `api_port` is
    where the local HTTP API is (to be) served, what the template's `ApiEndpoint` resolves
    to (unsubscribe links); 0 picks a free port at start.
    """

    def __init__(
        self,
        template: Path | None = None,
        *,
        data_dir: Path | None = None,
        in_process: bool = False,
        parameters: dict[str, str] | None = None,
        api_port: int = DEFAULT_API_PORT,
        on_invoke: Callable[[str, BatchOutcome], None] | None = None,
        on_fire: Callable[[FireRecord], None] | None = None,
    ) -> None:
        self.template = Path(template) if template is not None else find_template()
        self.data_dir = Path(data_dir or default_data_dir(self.template)).resolve()
        self.in_process = in_process
        self.parameters = parameters
        self.api_port = api_port
        self.on_invoke = on_invoke
        self.on_fire = on_fire
        self.settings = {**LOCAL_SETTINGS, "LOCAL_DATA_DIR": str(self.data_dir)}
        self.outbox = Outbox(self.data_dir / "outbox")
        self.resources: LocalResources | None = None
        self.endpoint_url: str | None = None
        self.sources: dict[str, SqsEventSource] = {}
        self.streams: list[StreamEventSource] = []
        self.scheduler: LocalScheduler | None = None
        self._saved_environ: dict[str, str] | None = None
        self._server: Any = None
        self._mock: Any = None
        self._bridge: LambdaBridge | None = None
        self._serving = False
        self._atomic_writes = False
        self._outbox_stop = threading.Event()
        self._outbox_thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> LocalRuntime:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._saved_environ = dict(os.environ)
        os.environ.update(LOCAL_CREDENTIALS)
        moto_dynamodb.install()
        self._atomic_writes = True
        self._start_moto()
        if self.api_port == 0:
            self.api_port = free_port()
        template = Template.load(self.template)
        declared = template.document.get("Parameters") or {}
        self.parameters = {
            **{name: value for name, value in LOCAL_PARAMETERS.items() if name in declared},
            **(self.parameters or {}),
        }
        self.resources = provision(
            template,
            endpoint_url=self.endpoint_url,
            parameters=self.parameters,
            api_endpoint=self.api_url,
        )
        os.environ.update({**self.resources.environment(), **self.settings})
        reset_cached_clients()
        self._bridge = LambdaBridge(
            region=self.resources.region,
            account_id=self.resources.account_id,
            function_loader=self.handler_for,
        )
        self._bridge.register_resources(self.resources)
        self._bridge.install()
        self._wire_event_sources()
        self.scheduler = LocalScheduler(
            aws.client("scheduler"), aws.client("sqs"), on_fire=self.on_fire
        )
        verify_sender(aws.client("ses"), aws.client("sesv2"), LOCAL_MAIL_DOMAIN)
        return self

    def _start_moto(self) -> None:
        if self.in_process:
            from moto import mock_aws

            # In-process moto serves only the default endpoints: an ambient one misdirects.
            for name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
                del os.environ[name]
            self._mock = mock_aws(config=MOTO_CONFIG)
            self._mock.start()
            return
        import requests
        from moto.server import ThreadedMotoServer

        port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint_url = f"http://127.0.0.1:{port}"
        # moto's Step Functions interpreter calls back into the server on MOTO_PORT.
        os.environ.update({"AWS_ENDPOINT_URL": self.endpoint_url, "MOTO_PORT": str(port)})
        requests.post(f"{self.endpoint_url}/moto-api/config", json=MOTO_CONFIG, timeout=10)

    @property
    def api_url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.api_port}"

    def stop(self) -> None:
        self.stop_serving()
        if self._bridge is not None:
            self._bridge.uninstall()
            self._bridge = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._atomic_writes:
            moto_dynamodb.uninstall()
            self._atomic_writes = False
        if self._saved_environ is not None:
            os.environ.clear()
            os.environ.update(self._saved_environ)
            self._saved_environ = None
        reset_cached_clients()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # --- functions -----------------------------------------------------------------

    def handler_for(self, function: LocalFunction) -> Callable[[Any, Any], Any]:
        """The function's handler, run with its own environment (plus the local settings)."""
        handler = load_handler(function.handler_file, function.handler_name)
        environment = {**function.environment, **self.settings}

        def run(event: Any, context: Any) -> Any:
            with config.function_environment(environment):
                return handler(event, context)

        return run

    def function(self, name: str) -> LocalFunction:
        assert self.resources is not None, "start() the runtime first"
        return self.resources.function_named(name)

    def invoke(self, name: str, event: Any) -> Any:
        """Invoke a function once with an event, as `sam local invoke` would (no Docker)."""
        function = self.function(name)
        context = LambdaContext(
            function_name=function.name,
            invoked_function_arn=function.arn,
            memory_limit_in_mb=function.memory_mb,
            timeout_seconds=function.timeout_seconds,
        )
        return self.handler_for(function)(event, context)

    def _wire_event_sources(self) -> None:
        assert self.resources is not None
        for function in self.resources.functions.values():
            for event in function.events:
                if isinstance(event, OtherEventSource):
                    self.resources.unsupported.append(
                        NotProvisioned(
                            f"{function.logical_id}.{event.name}",
                            f"{event.type} event",
                            "not delivered locally (the local runtime polls queues and streams)",
                        )
                    )
                elif isinstance(event, SqsEventConfig) and event.enabled:
                    queue = self.resources.queues[event.queue_logical_id]
                    self.sources[queue.logical_id] = self._sqs_source(function, event, queue)
                elif isinstance(event, DynamoDbStreamEventSource) and event.enabled:
                    table = self.resources.tables[event.table_logical_id]
                    self.streams.append(
                        StreamEventSource(
                            aws.client("dynamodb"),
                            aws.client("dynamodbstreams"),
                            table,
                            self.handler_for(function),
                            function_name=function.name,
                            batch_size=event.batch_size,
                            timeout_seconds=function.timeout_seconds,
                        )
                    )

    def _sqs_source(self, function: LocalFunction, event: SqsEventConfig, queue) -> SqsEventSource:
        def report(outcome: BatchOutcome) -> None:
            if self.on_invoke is not None:
                self.on_invoke(function.logical_id, outcome)

        return SqsEventSource(
            aws.client("sqs"),
            queue.url,
            queue.arn,
            self.handler_for(function),
            batch_size=event.batch_size,
            batching_window_s=event.maximum_batching_window_seconds,
            report_batch_item_failures="ReportBatchItemFailures" in event.function_response_types,
            maximum_concurrency=event.maximum_concurrency,
            function_timeout_s=function.timeout_seconds,
            function_name=function.name,
            on_invoke=report,
        )

    def source_for_task(self, task: str) -> SqsEventSource:
        from crmjobs.tasks import get_task

        logical_id = f"{get_task(task).resource_prefix}Queue"
        if logical_id not in self.sources:
            raise KeyError(f"no function consumes {logical_id} yet (task {task} not built)")
        return self.sources[logical_id]

    # --- running -------------------------------------------------------------------

    def serve(self) -> None:
        """Poll every queue and stream and fire schedules, in background threads."""
        for source in self.sources.values():
            source.start()
        for stream in self.streams:
            stream.start()
        assert self.scheduler is not None
        self.scheduler.start()
        self._outbox_stop.clear()
        self._outbox_thread = threading.Thread(target=self._sync_outbox, daemon=True)
        self._outbox_thread.start()
        self._serving = True

    def _sync_outbox(self) -> None:
        """Write every sent message to the outbox folder as an .eml file, once a second."""
        while not self._outbox_stop.wait(1.0):
            self.outbox.sync()

    def stop_serving(self) -> None:
        if not self._serving:
            return
        # Stopped side by side: each waits out its long poll.
        stoppers = [*self.sources.values(), *self.streams]
        if self.scheduler is not None:
            stoppers.append(self.scheduler)
        with ThreadPoolExecutor(max_workers=len(stoppers)) as pool:
            list(pool.map(lambda stoppable: stoppable.stop(), stoppers))
        self._outbox_stop.set()
        if self._outbox_thread is not None:
            self._outbox_thread.join(timeout=5)
        self.outbox.sync()
        self._serving = False

    @contextmanager
    def serving(self) -> Iterator[LocalRuntime]:
        self.serve()
        try:
            yield self
        finally:
            self.stop_serving()

    def drain_once(self) -> int:
        """One poll of every queue and stream in this thread; how many batches ran."""
        ran = 0
        for source in self.sources.values():
            if source.poll_once() is not None:
                ran += 1
        for stream in self.streams:
            ran += stream.poll_once()
        return ran


def reset_cached_clients() -> None:
    """Forget every client made for another endpoint (ours, and PynamoDB's per-model
    connections: PynamoDB reconnects only when a table name changes, and local runtimes
    reuse the same names) and what was cached from the last one's tables."""
    from pynamodb.models import Model

    from crmjobs.stores import workspaces

    aws.forget_clients()
    workspaces.forget_cached_limits()
    pending = list(Model.__subclasses__())
    while pending:
        model = pending.pop()
        model._connection = None
        pending.extend(model.__subclasses__())
