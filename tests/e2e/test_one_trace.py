"""Issue 8: one case's POST and every consumer it triggers, in all four services, share one trace
id; spans are linked through the message headers. Real processes export OTLP/HTTP to a real
receiver in the test."""

from __future__ import annotations

import secrets
import threading
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from shared.natsserver import NatsServer, free_port
from tests.conftest import make_platform
from tests.helpers import auth, eventually, new_case

pytestmark = pytest.mark.e2e


class Receiver:
    """A minimal OTLP/HTTP trace receiver: spans by trace id, with their service and parent."""

    def __init__(self) -> None:
        self.spans: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    service = next(
                        (
                            a.value.string_value
                            for a in resource_spans.resource.attributes
                            if a.key == "service.name"
                        ),
                        "?",
                    )
                    for scope in resource_spans.scope_spans:
                        for span in scope.spans:
                            receiver.spans[span.trace_id.hex()].append(
                                (service, span.name, span.span_id.hex(), span.parent_span_id.hex())
                            )
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def test_one_case_is_one_trace_across_all_four_services(
    tmp_path: Path, nats_server: NatsServer, receiver: Receiver
) -> None:
    p = make_platform(
        tmp_path,
        nats_server.url,
        OSSO_OTEL_EXPORTER="otlp",
        OSSO_OTEL_ENDPOINT=f"http://127.0.0.1:{receiver.port}",
        OTEL_BSP_SCHEDULE_DELAY="200",
    )
    p.start()
    try:
        trace_id = secrets.token_hex(16)
        headers = {**auth(p), "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        r = httpx.post(p.url("intake") + "/v1/cases", json=new_case("01", ("legal",)), headers=headers)
        assert r.status_code == 201

        def linked_hops() -> set[tuple[str, str]]:
            spans = list(receiver.spans.get(trace_id, []))
            service_of = {span_id: service for service, _, span_id, _ in spans}
            consumer_spans = [
                (svc, name, parent) for svc, name, _, parent in spans if name.endswith(" process")
            ]
            # Linked, not merely tagged: each consumer span's parent is a span of this same trace,
            # and the chain runs intake -> referral -> notification (two hops through the bus).
            for service, name, parent in consumer_spans:
                assert parent in service_of, f"{service} {name} is not linked to its publisher's span"
            hops = {(service_of[parent], service) for service, _, parent in consumer_spans}
            assert hops >= {
                ("osso-intake", "osso-referral"),
                ("osso-referral", "osso-notification"),
                ("osso-referral", "osso-reporting"),
                ("osso-intake", "osso-reporting"),
            }, hops
            return hops

        eventually(linked_hops, timeout=20, interval=0.2)
        services = {service for service, *_ in receiver.spans[trace_id]}
        assert services >= {"osso-intake", "osso-referral", "osso-notification", "osso-reporting"}
        # One server span for the request: FastAPI's own telemetry does not trace it a second time.
        server_spans = [
            name
            for service, name, *_ in receiver.spans[trace_id]
            if service == "osso-intake" and name == "POST /v1/cases"
        ]
        assert server_spans == ["POST /v1/cases"], sorted(name for _, name, *_ in receiver.spans[trace_id])
        # No span carries her phone.
        assert "0912345678" not in repr(receiver.spans)
    finally:
        p.stop()
