"""A fake Pinecone (control plane and data plane on one server) speaking the REST wire protocol
of the official SDK (10.x, API version 2026-07), for driving the real SDK in tests.

Usage::

    fake = FakePinecone(api_key="test-key")
    fake.add_index("chatbot-index", dimension=3)          # or let the code under test create it
    with serve(fake.app) as url:                         # tests.fakes.server.serve
        settings = Settings(pinecone_api_key="test-key", pinecone_controller_host=url, ...)
        ...
        assert fake.requests_to("/query")[0].body["filter"] == {...}

Every request must carry `Api-Key: <api_key>`; otherwise the answer is 401 with Pinecone's
body (`Invalid API Key`), which the SDK raises as `UnauthorizedError`.

Control plane (what `AsyncPinecone.indexes` calls; `host` in answers points back at this server):
- `GET /indexes` -> `{"indexes": [IndexModel, ...]}`
- `GET /indexes/{name}` -> IndexModel, or 404 `{"error": {"code": "NOT_FOUND", ...}, "status": 404}`
- `POST /indexes` with `{"name", "schema": {"fields": {"_values": {"type": "dense_vector",
  "dimension", "metric"}}}, "deployment": {"deployment_type": "managed", "cloud", "region"}}`
  -> 201 IndexModel; 409 `ALREADY_EXISTS` if the name is taken; 400 on a bad body.
- `DELETE /indexes/{name}` -> 202 (also drops the stored vectors).
  IndexModel is `{"name", "status": {"ready", "state"}, "schema", "deployment",
  "deletion_protection", "host": "http://127.0.0.1:PORT"}`. A created index answers
  `ready: false, state: "Initializing"` to its first `ready_after_describes` describes.

Data plane (what `AsyncIndex` calls; one vector store shared by every index, keyed by namespace):
- `POST /vectors/upsert` `{"vectors": [{"id", "values", "metadata"?}], "namespace"?}`
  -> `{"upsertedCount": n}`; 400 for more than 1000 vectors, a dimension mismatch or a
  metadata value that is not a string, number, boolean or list of strings (e.g. null).
- `POST /query` `{"topK", "vector", "namespace"?, "filter"?, "includeMetadata",
  "includeValues"}` -> `{"matches": [{"id", "score", "values", "metadata"?}], "namespace",
  "usage": {"readUnits": 1}}`: brute-force cosine, best first. Filters support `$eq $ne $gt
  $gte $lt $lte $in $nin $exists $and $or` and the `{"field": value}` shorthand; an unknown
  operator is a 400.
- `POST /vectors/delete` `{"namespace", "ids"? | "deleteAll"? | "filter"?}` -> `{}`
  (400 for more than 1000 ids).
- `POST /describe_index_stats` -> `{"namespaces": {ns: {"vectorCount"}}, "dimension",
  "indexFullness", "totalVectorCount", "metric", "vectorType"}`.
- `GET /vectors/list?namespace=&prefix=&limit=&paginationToken=` -> `{"vectors": [{"id"}],
  "pagination": {"next": token}, "namespace", "usage": {"readUnits": 1}}`: ids in ascending
  order, `limit` (1..100, default 100) per page, `pagination` only when more ids follow; the
  token is opaque (base64 of the last id listed), so deletions between pages skip nothing.
- `GET /vectors/fetch?ids=a&ids=b&namespace=` -> `{"vectors": {id: {"id", "values",
  "metadata"?}}, "namespace", "usage": {"readUnits": 1}}`: unknown ids are absent (400 for
  none or more than 1000 ids).

Inspection: `fake.requests` (every request, in order, as `RecordedRequest` with the parsed JSON
body, the query parameters and lower-cased headers), `fake.requests_to(path)`,
`fake.vectors(namespace)`, `fake.indexes`. `fake.on_request`, when set, is called with each
request as it arrives (on the server's thread), e.g. to observe the caller's state meanwhile.
`fake.reset()` forgets everything (indexes included), e.g. between tests sharing one server.

Faults: `fake.inject(Fault(...), times=1)` queues a fault for the next matching request(s);
`times=None` keeps it until `fake.clear_faults()`. A fault waits `delay` seconds (to trigger
client timeouts; it gives up early when the client disconnects), then answers `status` with
`body` (default: Pinecone's error JSON for that status) and `headers`. `status=None` answers
normally after the delay, and `Fault(status=200, body=b"{not json")` is a malformed answer.
Faults are checked before authentication, like a failing gateway in front of Pinecone.

The SDK retries 408/429/5xx and transport errors on its own (4 attempts, with backoff the data
plane cannot be configured to skip), so use `times=None` for a failure that must reach the
caller, and `disable_sdk_retry_backoff(monkeypatch)` to keep such tests fast.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

MAX_UPSERT_VECTORS = 1000
MAX_DELETE_IDS = 1000
MAX_FETCH_IDS = 1000
MAX_LIST_LIMIT = 100
MAX_TOP_K = 10_000
_INDEX_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?")
_METRICS = frozenset({"cosine", "euclidean", "dotproduct"})

# Data-plane errors use the gRPC-gateway body ({"code", "message", "details"}).
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 500: 13, 503: 14, 504: 4}
_REST_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "UNKNOWN",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass(frozen=True)
class Fault:
    """A scripted failure; see the module docstring."""

    status: int | None = 503
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.path is None or self.path == path) and (
            self.method is None or self.method == method
        )


@dataclass
class _QueuedFault:
    fault: Fault
    remaining: int | None


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class FakeIndex:
    name: str
    schema: dict[str, Any]
    dimension: int
    metric: str
    cloud: str = "aws"
    region: str = "us-east-1"
    describes_until_ready: int = 0

    @property
    def ready(self) -> bool:
        return self.describes_until_ready <= 0


@dataclass
class StoredVector:
    id: str
    values: list[float]
    metadata: dict[str, Any]


class _BadRequest(Exception):
    pass


class FakePinecone:
    """State of the fake plus its ASGI `app`; safe to inspect from the test thread."""

    def __init__(self, *, api_key: str = "test-key", ready_after_describes: int = 0) -> None:
        self.api_key = api_key
        self.ready_after_describes = ready_after_describes
        self._initial_ready_after_describes = ready_after_describes
        self.indexes: dict[str, FakeIndex] = {}
        self.requests: list[RecordedRequest] = []
        self._namespaces: dict[str, dict[str, StoredVector]] = {}
        self._faults: list[_QueuedFault] = []
        self._lock = threading.Lock()
        self.on_request: Callable[[RecordedRequest], None] | None = None
        self.app = Starlette(
            routes=[
                Route("/indexes", self._list_indexes, methods=["GET"]),
                Route("/indexes", self._create_index, methods=["POST"]),
                Route("/indexes/{name}", self._describe_index, methods=["GET"]),
                Route("/indexes/{name}", self._delete_index, methods=["DELETE"]),
                Route("/vectors/upsert", self._upsert, methods=["POST"]),
                Route("/query", self._query, methods=["POST"]),
                Route("/vectors/delete", self._delete, methods=["POST"]),
                Route("/describe_index_stats", self._stats, methods=["POST"]),
                Route("/vectors/list", self._list, methods=["GET"]),
                Route("/vectors/fetch", self._fetch, methods=["GET"]),
            ],
            middleware=[Middleware(_Gate, fake=self)],
        )

    # ---- test-side API -------------------------------------------------------------------

    def add_index(
        self,
        name: str,
        *,
        dimension: int,
        metric: str = "cosine",
        cloud: str = "aws",
        region: str = "us-east-1",
    ) -> None:
        """Seed an existing, ready index."""
        schema = {
            "fields": {
                "_values": {"type": "dense_vector", "dimension": dimension, "metric": metric}
            }
        }
        with self._lock:
            self.indexes[name] = FakeIndex(name, schema, dimension, metric, cloud, region)

    def inject(self, fault: Fault, *, times: int | None = 1) -> None:
        with self._lock:
            self._faults.append(_QueuedFault(fault, times))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Back to a fresh fake: no indexes, vectors, requests or faults."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self._namespaces.clear()
            self.indexes.clear()
            self.ready_after_describes = self._initial_ready_after_describes

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path == path and (method is None or r.method == method)
            ]

    def vectors(self, namespace: str = "") -> dict[str, StoredVector]:
        with self._lock:
            return dict(self._namespaces.get(namespace, {}))

    def seed(self, namespace: str, vectors: list[StoredVector]) -> None:
        """Store vectors directly, e.g. ones our code would never write (no metadata)."""
        with self._lock:
            store = self._namespaces.setdefault(namespace, {})
            for vector in vectors:
                store[vector.id] = vector

    # ---- gate: recording, faults, auth ---------------------------------------------------

    def _record(self, request: RecordedRequest) -> Fault | None:
        if self.on_request is not None:
            self.on_request(request)
        with self._lock:
            self.requests.append(request)
            for queued in self._faults:
                if queued.fault.matches(request.method, request.path):
                    if queued.remaining is not None:
                        queued.remaining -= 1
                        if queued.remaining <= 0:
                            self._faults.remove(queued)
                    return queued.fault
        return None

    # ---- control plane -------------------------------------------------------------------

    def _index_model(self, index: FakeIndex, request: Request) -> dict[str, Any]:
        return {
            "name": index.name,
            "status": {
                "ready": index.ready,
                "state": "Ready" if index.ready else "Initializing",
            },
            "schema": index.schema,
            "deployment": {
                "deployment_type": "managed",
                "cloud": index.cloud,
                "region": index.region,
            },
            "deletion_protection": "disabled",
            "host": f"{request.url.scheme}://{request.url.netloc}",
        }

    async def _list_indexes(self, request: Request) -> Response:
        with self._lock:
            models = [self._index_model(i, request) for i in self.indexes.values()]
        return JSONResponse({"indexes": models})

    async def _describe_index(self, request: Request) -> Response:
        name = request.path_params["name"]
        with self._lock:
            index = self.indexes.get(name)
            if index is None:
                return rest_error(404, f"Resource {name} not found")
            model = self._index_model(index, request)
            index.describes_until_ready -= 1
        return JSONResponse(model)

    async def _delete_index(self, request: Request) -> Response:
        name = request.path_params["name"]
        with self._lock:
            if self.indexes.pop(name, None) is None:
                return rest_error(404, f"Resource {name} not found")
            self._namespaces.clear()
        return Response(status_code=202)

    async def _create_index(self, request: Request) -> Response:
        body = await _json_body(request)
        try:
            index = self._parse_create(body)
        except _BadRequest as exc:
            return rest_error(400, str(exc))
        with self._lock:
            if index.name in self.indexes:
                return rest_error(409, f"Resource {index.name} already exists")
            self.indexes[index.name] = index
            model = self._index_model(index, request)
        return JSONResponse(model, status_code=201)

    def _parse_create(self, body: Any) -> FakeIndex:
        if not isinstance(body, dict):
            raise _BadRequest("Request body must be a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not _INDEX_NAME.fullmatch(name):
            raise _BadRequest(
                "Name must consist of lower case alphanumeric characters or '-', max 45"
            )
        fields = (body.get("schema") or {}).get("fields")
        if not isinstance(fields, dict) or not fields:
            raise _BadRequest("schema.fields must declare at least one field")
        dense = [
            f for f in fields.values() if isinstance(f, dict) and f.get("type") == "dense_vector"
        ]
        if len(dense) != 1:
            raise _BadRequest("This fake supports exactly one dense_vector field")
        dimension, metric = dense[0].get("dimension"), dense[0].get("metric", "cosine")
        if not isinstance(dimension, int) or not 1 <= dimension <= 20_000:
            raise _BadRequest("dimension must be an integer between 1 and 20000")
        if metric not in _METRICS:
            raise _BadRequest(f"metric must be one of {sorted(_METRICS)}")
        deployment = body.get("deployment") or {"cloud": "aws", "region": "us-east-1"}
        if deployment.get("deployment_type", "managed") != "managed":
            raise _BadRequest("This fake supports managed (serverless) deployments only")
        return FakeIndex(
            name=name,
            schema={"fields": fields},
            dimension=dimension,
            metric=metric,
            cloud=str(deployment.get("cloud", "aws")),
            region=str(deployment.get("region", "us-east-1")),
            describes_until_ready=self.ready_after_describes,
        )

    # ---- data plane ----------------------------------------------------------------------

    async def _upsert(self, request: Request) -> Response:
        body = await _json_body(request)
        try:
            vectors = _parse_vectors(body)
            namespace = _namespace(body)
            with self._lock:
                store = self._namespaces.setdefault(namespace, {})
                _check_dimension(store, len(vectors[0].values) if vectors else None)
                for vector in vectors:
                    store[vector.id] = vector
        except _BadRequest as exc:
            return grpc_error(400, str(exc))
        return JSONResponse({"upsertedCount": len(vectors)})

    async def _query(self, request: Request) -> Response:
        body = await _json_body(request)
        try:
            if not isinstance(body, dict):
                raise _BadRequest("Request body must be a JSON object")
            top_k = body.get("topK")
            if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
                raise _BadRequest(f"topK must be between 1 and {MAX_TOP_K}")
            raw_query = body.get("vector")
            if not _is_number_list(raw_query):
                raise _BadRequest("Exactly one of vector or id must be provided")
            query = [float(x) for x in raw_query]
            namespace = _namespace(body)
            flt = body.get("filter")
            with self._lock:
                candidates = list(self._namespaces.get(namespace, {}).values())
                _check_dimension(self._namespaces.get(namespace, {}), len(query))
            matched = [v for v in candidates if flt is None or matches_filter(v.metadata, flt)]
        except _BadRequest as exc:
            return grpc_error(400, str(exc))
        scored = sorted(
            ((cosine(query, v.values), v) for v in matched), key=lambda s: (-s[0], s[1].id)
        )
        matches = []
        for score, vector in scored[:top_k]:
            match: dict[str, Any] = {
                "id": vector.id,
                "score": score,
                "values": vector.values if body.get("includeValues") else [],
            }
            if body.get("includeMetadata") and vector.metadata:
                match["metadata"] = vector.metadata
            matches.append(match)
        return JSONResponse({"matches": matches, "namespace": namespace, "usage": {"readUnits": 1}})

    async def _delete(self, request: Request) -> Response:
        body = await _json_body(request)
        try:
            if not isinstance(body, dict):
                raise _BadRequest("Request body must be a JSON object")
            namespace = _namespace(body)
            ids, delete_all, flt = body.get("ids"), body.get("deleteAll"), body.get("filter")
            if ids is not None and (not isinstance(ids, list) or len(ids) > MAX_DELETE_IDS):
                raise _BadRequest(f"ids must be a list of at most {MAX_DELETE_IDS} ids")
            with self._lock:
                store = self._namespaces.get(namespace, {})
                if delete_all:
                    store.clear()
                elif ids is not None:
                    for vector_id in ids:
                        store.pop(vector_id, None)
                elif flt is not None:
                    for vector_id in [
                        k for k, v in store.items() if matches_filter(v.metadata, flt)
                    ]:
                        del store[vector_id]
                else:
                    raise _BadRequest("One of ids, deleteAll or filter must be provided")
        except _BadRequest as exc:
            return grpc_error(400, str(exc))
        return JSONResponse({})

    async def _stats(self, request: Request) -> Response:
        with self._lock:
            counts = {ns: len(vs) for ns, vs in self._namespaces.items() if vs}
            dimension = next(
                (len(v.values) for vs in self._namespaces.values() for v in vs.values()), None
            )
        return JSONResponse(
            {
                "namespaces": {ns: {"vectorCount": n} for ns, n in counts.items()},
                "dimension": dimension,
                "indexFullness": 0.0,
                "totalVectorCount": sum(counts.values()),
                "metric": "cosine",
                "vectorType": "dense",
            }
        )

    async def _list(self, request: Request) -> Response:
        params = request.query_params
        namespace = params.get("namespace", "")
        prefix = params.get("prefix", "")
        try:
            limit = int(params.get("limit", str(MAX_LIST_LIMIT)))
        except ValueError:
            return grpc_error(400, "limit must be an integer")
        if not 1 <= limit <= MAX_LIST_LIMIT:
            return grpc_error(400, f"limit must be between 1 and {MAX_LIST_LIMIT}")
        after = ""
        token = params.get("paginationToken")
        if token is not None:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode()
            except (binascii.Error, UnicodeDecodeError):
                return grpc_error(400, "Invalid pagination token")
        with self._lock:
            ids = sorted(
                vector_id
                for vector_id in self._namespaces.get(namespace, {})
                if vector_id.startswith(prefix) and vector_id > after
            )
        page = ids[:limit]
        body: dict[str, Any] = {
            "vectors": [{"id": vector_id} for vector_id in page],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if len(ids) > limit:
            body["pagination"] = {"next": base64.urlsafe_b64encode(page[-1].encode()).decode()}
        return JSONResponse(body)

    async def _fetch(self, request: Request) -> Response:
        ids = request.query_params.getlist("ids")
        namespace = request.query_params.get("namespace", "")
        if not ids or len(ids) > MAX_FETCH_IDS:
            return grpc_error(400, f"ids must hold between 1 and {MAX_FETCH_IDS} ids")
        with self._lock:
            store = self._namespaces.get(namespace, {})
            found = {vector_id: store[vector_id] for vector_id in ids if vector_id in store}
        vectors: dict[str, Any] = {}
        for vector_id, vector in found.items():
            entry: dict[str, Any] = {"id": vector_id, "values": vector.values}
            if vector.metadata:
                entry["metadata"] = vector.metadata
            vectors[vector_id] = entry
        return JSONResponse({"vectors": vectors, "namespace": namespace, "usage": {"readUnits": 1}})


class _Gate:
    """Records every request, plays scripted faults, then checks the API key."""

    def __init__(self, app: Any, fake: FakePinecone) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        path = scope["path"]
        fault = self.fake._record(
            RecordedRequest(
                method=scope["method"],
                path=path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                query={k: request.query_params.getlist(k) for k in request.query_params},
            )
        )
        control_plane = path.startswith("/indexes")
        response: Response | None = None
        if fault is not None:
            await _wait_unless_disconnected(receive, fault.delay)
            if fault.status is not None:
                response = _fault_response(fault, control_plane)
        if response is None and request.headers.get("api-key") != self.fake.api_key:
            response = (rest_error if control_plane else grpc_error)(401, "Invalid API Key")
        if response is not None:
            await response(scope, receive, send)
            return

        async def replay() -> Any:
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)


async def _wait_unless_disconnected(receive: Any, delay: float) -> None:
    """Hold the answer back for `delay` seconds, giving up when the client hangs up."""
    if delay <= 0:
        return
    try:
        async with asyncio.timeout(delay):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass


def _fault_response(fault: Fault, control_plane: bool) -> Response:
    assert fault.status is not None
    if fault.body is not None:
        return Response(
            fault.body,
            status_code=fault.status,
            headers=dict(fault.headers),
            media_type="application/json",
        )
    if fault.status < 400:
        return JSONResponse({}, status_code=fault.status, headers=dict(fault.headers))
    builder = rest_error if control_plane else grpc_error
    response = builder(fault.status, f"Injected fault ({fault.status})")
    response.headers.update(fault.headers)
    return response


def rest_error(status: int, message: str) -> JSONResponse:
    """A control-plane error body, as api.pinecone.io sends it."""
    code = _REST_CODES.get(status, "UNKNOWN")
    return JSONResponse(
        {"error": {"code": code, "message": message}, "status": status}, status_code=status
    )


def grpc_error(status: int, message: str) -> JSONResponse:
    """A data-plane error body, as an index host sends it."""
    return JSONResponse(
        {"code": _GRPC_CODES.get(status, 2), "message": message, "details": []},
        status_code=status,
    )


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def _namespace(body: Any) -> str:
    namespace = body.get("namespace", "") if isinstance(body, dict) else ""
    if not isinstance(namespace, str):
        raise _BadRequest("namespace must be a string")
    return namespace


def _is_number_list(value: Any) -> TypeGuard[list[float]]:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
    )


def _check_dimension(store: Mapping[str, StoredVector], dimension: int | None) -> None:
    existing = next(iter(store.values()), None)
    if existing is not None and dimension is not None and len(existing.values) != dimension:
        raise _BadRequest(
            f"Vector dimension {dimension} does not match the dimension of the index "
            f"{len(existing.values)}"
        )


def _parse_vectors(body: Any) -> list[StoredVector]:
    if not isinstance(body, dict) or not isinstance(body.get("vectors"), list):
        raise _BadRequest("vectors must be a list")
    raw_vectors = body["vectors"]
    if not raw_vectors or len(raw_vectors) > MAX_UPSERT_VECTORS:
        raise _BadRequest(f"vectors must hold between 1 and {MAX_UPSERT_VECTORS} vectors")
    vectors: list[StoredVector] = []
    for raw in raw_vectors:
        vector_id, values = raw.get("id"), raw.get("values")
        if not isinstance(vector_id, str) or not 1 <= len(vector_id) <= 512:
            raise _BadRequest("Vector ID must be a string of 1 to 512 characters")
        if not _is_number_list(values):
            raise _BadRequest(f"Vector {vector_id} must have non-empty dense values")
        metadata = raw.get("metadata") or {}
        for key, value in metadata.items():
            if not _valid_metadata_value(value):
                raise _BadRequest(
                    f"Metadata value must be a string, number, boolean or list of strings, "
                    f"got '{json.dumps(value)}' for field '{key}'"
                )
        vectors.append(StoredVector(vector_id, [float(x) for x in values], dict(metadata)))
    if len({len(v.values) for v in vectors}) > 1:
        raise _BadRequest("All vectors in a request must have the same dimension")
    return vectors


def _valid_metadata_value(value: Any) -> bool:
    if isinstance(value, str | bool | int | float):
        return True
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps booleans apart from numbers (True is not 1 in a filter)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def matches_filter(metadata: Mapping[str, Any], flt: Any) -> bool:
    """Pinecone's metadata filter language, evaluated against one record's metadata."""
    if not isinstance(flt, dict):
        raise _BadRequest("filter must be a JSON object")
    for key, condition in flt.items():
        if key in ("$and", "$or"):
            if not isinstance(condition, list) or not condition:
                raise _BadRequest(f"{key} must be a non-empty list")
            results = (matches_filter(metadata, sub) for sub in condition)
            if not (all(results) if key == "$and" else any(results)):
                return False
        elif key.startswith("$"):
            raise _BadRequest(f"Unknown top-level operator {key}")
        elif isinstance(condition, dict):
            for op, operand in condition.items():
                if not _compare(metadata, key, op, operand):
                    return False
        elif not _compare(metadata, key, "$eq", condition):
            return False
    return True


def _compare(metadata: Mapping[str, Any], key: str, op: str, operand: Any) -> bool:
    present = key in metadata
    value = metadata.get(key)
    values = value if isinstance(value, list) else [value]
    if op == "$exists":
        return present == bool(operand)
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise _BadRequest(f"{op} needs a list")
        hit = present and any(_same(v, o) for v in values for o in operand)
        return hit if op == "$in" else not hit
    if op in ("$eq", "$ne"):
        hit = present and any(_same(v, operand) for v in values)
        return hit if op == "$eq" else not hit
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if not _number(operand):
            raise _BadRequest(f"{op} needs a number")
        if not present or not _number(value):
            return False
        return bool(
            {
                "$gt": value > operand,
                "$gte": value >= operand,
                "$lt": value < operand,
                "$lte": value <= operand,
            }[op]
        )
    raise _BadRequest(f"Unknown operator {op}")


async def _no_sleep(_delay: float) -> None:
    return None


def disable_sdk_retry_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the SDK's retries but skip their backoff sleeps, and refill its retry budget.

    The SDK's data-plane REST client always retries 3 times with jittered backoff (its
    RetryConfig only reaches the control plane). `_async_retry_sleep` is the seam the SDK
    provides for exactly this; the per-host retry budget is process-wide, so a test that
    exhausts it would otherwise change how often later tests retry.
    """
    from pinecone._internal import http_client

    monkeypatch.setattr(http_client, "_async_retry_sleep", _no_sleep)
    http_client.get_budget_registry()._reset()
