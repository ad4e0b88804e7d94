"""A minimal OTLP/HTTP trace receiver: what a collector sees of the gateway's spans.

It accepts ``POST /v1/traces`` with a protobuf ``ExportTraceServiceRequest`` (gzip or not), as
the OpenTelemetry SDK's OTLP/HTTP exporter sends it, decodes it with ``opentelemetry-proto``
and keeps the spans as plain dicts, so a test can assert on the exact span tree a real
exporter produced over a real socket (no in-memory exporter, no mock). Needs the ``[otel]``
extra. A stdlib threaded HTTP server: it runs beside a test or a benchmark without an event
loop of its own.

Run: ``python -m rankgate.testing.otlp_receiver --port 4318 [--out spans.jsonl]`` (prints
the span count on exit).
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _value(v: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def decode(body: bytes) -> list[dict[str, Any]]:
    """The spans of one export request, each a dict: ids as hex (``parent_id`` None for a
    root), name, kind, attributes, status, start/end ns and the resource's attributes."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    spans = []
    for rs in req.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append({
                    "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                    "parent_id": s.parent_span_id.hex() or None, "name": s.name,
                    "kind": s.kind, "start_ns": s.start_time_unix_nano,
                    "end_ns": s.end_time_unix_nano,
                    "attributes": {kv.key: _value(kv.value) for kv in s.attributes},
                    "status": s.status.code, "scope": ss.scope.name, "resource": resource,
                })
    return spans


class OTLPReceiver:
    """An OTLP/HTTP receiver on ``127.0.0.1:port`` (0: any free port) in a background thread.
    ``spans`` grows as exports arrive; ``requests`` counts the export calls."""

    def __init__(self, port: int = 0, keep: bool = True) -> None:
        self.spans: list[dict[str, Any]] = []
        self.requests = 0
        self.count = 0
        self._keep = keep
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path != "/v1/traces":
                    self._answer(404, b"")
                    return
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                try:
                    spans = decode(body)
                except Exception:
                    self._answer(400, b"")
                    return
                with receiver._lock:
                    receiver.requests += 1
                    receiver.count += len(spans)
                    if receiver._keep:
                        receiver.spans.extend(spans)
                self._answer(200, b"")  # an empty ExportTraceServiceResponse

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OTLPReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.spans)


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=4318)
    ap.add_argument("--out", type=Path, help="write the spans here as JSON lines on exit")
    args = ap.parse_args()
    receiver = OTLPReceiver(args.port, keep=args.out is not None).start()
    signal.signal(signal.SIGTERM, _interrupt)  # a benchmark stops it with terminate()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
        if args.out is not None:
            with args.out.open("w") as f:
                for s in receiver.spans:
                    f.write(json.dumps(s) + "\n")
        print(json.dumps({"export_requests": receiver.requests, "spans": receiver.count}))


if __name__ == "__main__":
    main()
