"""A stand-in Flow 5 server for the tests: real HTTP on loopback, following flow-api.md.

Not Flow: it computes its own analysis (a 64-bit DCT hash of the uploaded thumbnail) and
its own similarity (1 - 2 * Hamming distance / 64, floored at 0), which is enough to tell
copies and resized or re-encoded versions of a picture from different pictures. What it
imitates faithfully is the contract: paths, parameters, JSON shapes, Solr's error shape,
soft-commit visibility (a searcher snapshot taken at commit), cursorMark listing, the
Starter edition's document limit, and the faults a real server shows (refused
connections, slow answers, 500s, malformed JSON). It is strict: a parameter or body the
contract does not name is answered with HTTP 400, so the client cannot drift from it.

Never shipped, never offered as a backend.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
from PIL import Image, UnidentifiedImageError

ACCEPTED_UPLOADS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "gif": "GIF"}
SMART_FILTERS = ("off", "low", "medium", "high")
MODEL = "standin-dct64-v1"


class Reject(Exception):
    """Answer with a Solr-style error."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Recorded:
    """One request as the server saw it, after URL and form decoding."""

    method: str
    endpoint: str  # health, count, select, analyze, update, commit, delete, duplicate, unknown
    path: str
    raw_query: str
    query: list[tuple[str, str]]
    content_type: str = ""
    body_size: int = 0
    form: dict[str, str] = field(default_factory=dict)  # input.data left out, see upload
    json: Any = None
    upload: dict[str, Any] | None = None  # format, width, height of the decoded upload

    def param(self, name: str) -> str | None:
        values = [value for key, value in self.query if key == name]
        return values[-1] if values else None


@dataclass
class _Fault:
    kind: str  # "status" | "malformed" | "slow"
    endpoint: str | None
    remaining: int | None  # None: until cleared
    status: int = 500
    delay: float = 0.0
    body: bytes = b""


def dct_hash(image: Image.Image) -> int:
    """A 64-bit perceptual hash: signs of the 8x8 lowest DCT frequencies of a 32x32 grey version."""
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    n = 32
    k = np.arange(n)
    basis = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n))
    coefficients = (basis @ grey @ basis.T)[:8, :8].flatten()
    median = np.median(coefficients[1:])
    bits = 0
    for value in coefficients:
        bits = (bits << 1) | int(value > median)
    return bits


def similarity(first: int, second: int) -> float:
    distance = bin(first ^ second).count("1")
    return max(0.0, 1.0 - 2.0 * distance / 64.0)


class FlowStandIn:
    """Start with ``start()`` (port 0: the OS picks one); ``url`` is then what FlowSettings.url takes."""

    def __init__(self, collection: str = "my-collection", document_limit: int | None = None, limit_status: int = 400):
        self.collection = collection
        self.document_limit = document_limit
        self.limit_status = limit_status
        self.honour_threshold = True  # False: /duplicate ignores rank.threshold (tests client-side filtering)
        self.requests: list[Recorded] = []
        self.connections_accepted = 0
        self._lock = threading.RLock()
        self._latest: dict[str, dict] = {}  # the index as written, committed or not
        self._visible: dict[str, dict] = {}  # what search sees: the snapshot at the last commit
        self._faults: list[_Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._open_sockets: set[socket.socket] = set()
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FlowStandIn:
        self._listen(self.port)
        return self

    def stop(self) -> None:
        self.refuse_connections()

    def __enter__(self) -> FlowStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def refuse_connections(self) -> None:
        """Stop listening and drop open keep-alive connections: clients get 'connection refused'."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            sockets, self._open_sockets = set(self._open_sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def accept_connections(self) -> None:
        """Listen again on the same port (Flow is back)."""
        if self._server is None:
            self._listen(self.port)

    def _listen(self, port: int) -> None:
        server = _Server(("127.0.0.1", port), _Handler)
        server.standin = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ faults

    def fail_next(self, count: int | None = 1, status: int = 500, endpoint: str | None = None) -> None:
        """The next ``count`` requests (to ``endpoint``, or any) answer HTTP ``status`` with a Solr error."""
        self._add_fault(_Fault("status", endpoint, count, status=status))

    def malformed_next(self, count: int | None = 1, endpoint: str | None = None, body: bytes = b'{"responseHeader": {"sta') -> None:
        """The next ``count`` requests answer 200 with ``body`` as application/json (truncated JSON by default)."""
        self._add_fault(_Fault("malformed", endpoint, count, body=body))

    def slow(self, delay: float, endpoint: str | None = None, count: int | None = None) -> None:
        """Wait ``delay`` seconds before answering (``count`` requests, or until cleared)."""
        self._add_fault(_Fault("slow", endpoint, count, delay=delay))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_faults(self, endpoint: str) -> list[_Fault]:
        taken = []
        with self._lock:
            for fault in list(self._faults):
                if fault.endpoint not in (None, endpoint):
                    continue
                taken.append(fault)
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
        return taken

    # ------------------------------------------------------------ inspection

    @property
    def counts(self) -> Counter:
        with self._lock:
            return Counter(request.endpoint for request in self.requests)

    def requests_to(self, endpoint: str) -> list[Recorded]:
        with self._lock:
            return [request for request in self.requests if request.endpoint == endpoint]

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()
            self.connections_accepted = 0

    @property
    def documents(self) -> dict[str, dict]:
        """Committed (visible) docs by id."""
        with self._lock:
            return dict(self._visible)

    @property
    def written(self) -> dict[str, dict]:
        """Every doc written, committed or not."""
        with self._lock:
            return dict(self._latest)

    def put_document(self, doc_id: str, image: Image.Image, path: str = "/elsewhere/x.png") -> None:
        """Store and commit a doc directly, as if another client had indexed it (for drift tests)."""
        with self._lock:
            doc = {"id": doc_id, "image": path, "filename": path.rsplit("/", 1)[-1], "hash": dct_hash(image)}
            self._latest[doc_id] = doc
            self._visible = dict(self._latest)

    # ------------------------------------------------------------ the API

    def route(self, method: str, path: str) -> tuple[str, Callable[[Recorded, bytes], dict] | None]:
        base = f"/api/cores/{self.collection}"
        routes: dict[tuple[str, str], tuple[str, Callable]] = {
            ("GET", base): ("health", self._health),
            ("GET", f"{base}/select"): ("select", self._select),
            ("POST", f"{base}/analyze"): ("analyze", self._analyze),
            ("GET", f"{base}/analyze"): ("analyze", self._analyze_url),
            ("POST", f"{base}/update"): ("update", self._update),
            ("GET", f"{base}/duplicate"): ("duplicate", self._duplicate),
            ("POST", f"/solr/{self.collection}/update"): ("delete", self._delete),
        }
        if (method, path.rstrip("/") or "/") in routes:
            return routes[(method, path.rstrip("/") or "/")]
        return "unknown", None

    def _health(self, request: Recorded, body: bytes) -> dict:
        _allow(request, set())
        return {"responseHeader": {"status": 0}, "collection": self.collection, "status": "OK"}

    def _select(self, request: Recorded, body: bytes) -> dict:
        _allow(request, {"q", "rows", "fl", "sort", "cursorMark"})
        q = request.param("q")
        if q not in (None, "*:*"):
            raise Reject(400, f"the stand-in supports only q=*:*, not {q!r}")
        rows = _integer(request, "rows", 10)
        mark = request.param("cursorMark")
        fl = request.param("fl") or "id"
        if set(fl.split(",")) - {"id", "filename", "image"}:
            raise Reject(400, f"undefined field in fl={fl!r}")
        with self._lock:
            ids = sorted(self._visible)
            docs = self._visible
            if mark is None:
                page = ids[:rows]
                answer: dict[str, Any] = {}
            else:
                if request.param("sort") != "id asc":
                    raise Reject(400, "Cursor functionality requires a sort containing a uniqueKey field tie breaker")
                start = 0
                if mark != "*":
                    after = _decode_mark(mark)
                    start = next((i for i, doc_id in enumerate(ids) if doc_id > after), len(ids))
                page = ids[start : start + rows]
                answer = {"nextCursorMark": _encode_mark(page[-1]) if page else mark}
            return {
                "responseHeader": {"status": 0},
                "response": {
                    "numFound": len(ids),
                    "start": 0,
                    "docs": [{key: docs[doc_id][key] for key in fl.split(",")} for doc_id in page],
                },
                **answer,
            }

    def _analyze(self, request: Recorded, body: bytes) -> dict:
        _allow(request, {"modules.apply", "logParamsList"})
        if request.param("modules.apply") != "duplicate":
            raise Reject(400, "modules.apply must be 'duplicate' for this stand-in")
        if request.param("logParamsList") != "":
            raise Reject(400, "logParamsList= (empty) is required so that the payload is not logged")
        if not request.content_type.startswith("application/x-www-form-urlencoded"):
            raise Reject(400, f"expected a form (application/x-www-form-urlencoded), got {request.content_type!r}")
        form = dict(parse_qsl(body.decode("ascii", "replace"), keep_blank_values=True))
        data_uri = form.pop("input.data", None)
        request.form = form
        if form:
            raise Reject(400, f"unexpected form fields: {sorted(form)}")
        if not data_uri:
            raise Reject(400, "input.data is required")
        header, comma, payload = data_uri.partition(",")
        kind = header.removeprefix("data:image/").removesuffix(";base64")
        if not comma or not header.startswith("data:image/") or not header.endswith(";base64"):
            raise Reject(400, f"input.data is not a base64 image data URI (starts {data_uri[:30]!r})")
        if kind not in ACCEPTED_UPLOADS:
            raise Reject(400, f"unsupported image type image/{kind}: JPEG, PNG and GIF only")
        try:
            raw = base64.b64decode(payload, validate=True)
            with Image.open(io.BytesIO(raw)) as image:
                image.load()
                if image.format != ACCEPTED_UPLOADS[kind]:
                    raise Reject(400, f"data URI says image/{kind} but holds {image.format}")
                request.upload = {"format": image.format, "width": image.width, "height": image.height, "bytes": len(raw)}
                hashed = dct_hash(image)
        except (binascii.Error, UnidentifiedImageError, OSError) as error:
            raise Reject(400, f"cannot decode input.data: {error}") from None
        return {"responseHeader": {"status": 0}, "outputs": {"duplicate": {"model": MODEL, "hash": f"{hashed:016x}"}}}

    def _analyze_url(self, request: Recorded, body: bytes) -> dict:
        raise Reject(400, "the stand-in does not fetch input.url (dupe-scanner uploads local images)")

    def _update(self, request: Recorded, body: bytes) -> dict:
        _allow(request, {"softCommit", "openSearcher", "waitSearcher"})
        commit = request.param("softCommit") == "true"
        if commit and (request.param("openSearcher"), request.param("waitSearcher")) != ("true", "true"):
            raise Reject(400, "softCommit=true comes with openSearcher=true&waitSearcher=true")
        if body.strip():
            doc = _json_body(request, body)
            self._store(doc)
        elif not commit:
            raise Reject(400, "missing content stream")
        if commit:
            with self._lock:
                self._visible = dict(self._latest)
        return {"responseHeader": {"status": 0, "QTime": 0}}

    def _store(self, doc: Any) -> None:
        if not isinstance(doc, dict) or set(doc) != {"id", "image", "filename", "import"}:
            keys = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
            raise Reject(400, f"a doc is exactly {{id, image, filename, import}}, got {keys}")
        if not isinstance(doc["id"], str) or not doc["id"]:
            raise Reject(400, "id must be a non-empty string")
        if not isinstance(doc["image"], str) or not isinstance(doc["filename"], str):
            raise Reject(400, "image and filename must be strings")
        analysis = doc["import"].get("duplicate") if isinstance(doc["import"], dict) else None
        if not isinstance(analysis, dict) or analysis.get("model") != MODEL:
            raise Reject(400, "import must be the outputs object that analyze returned")
        with self._lock:
            new = doc["id"] not in self._latest
            if new and self.document_limit is not None and len(self._latest) >= self.document_limit:
                raise Reject(
                    self.limit_status,
                    f"Exceeded document limit of {self.document_limit} documents for this edition of Flow. "
                    "Contact pixolution for a license.",
                )
            self._latest[doc["id"]] = {
                "id": doc["id"],
                "image": doc["image"],
                "filename": doc["filename"],
                "hash": int(analysis["hash"], 16),
            }

    def _delete(self, request: Recorded, body: bytes) -> dict:
        _allow(request, {"commit"})
        command = _json_body(request, body)
        target = command.get("delete") if isinstance(command, dict) and set(command) == {"delete"} else None
        if not isinstance(target, dict) or len(target) != 1:
            raise Reject(400, 'expected {"delete": {"id": ID}} or {"delete": {"query": "*:*"}}')
        with self._lock:
            if "id" in target and isinstance(target["id"], str):
                self._latest.pop(target["id"], None)
            elif target.get("query") == "*:*":
                self._latest.clear()
            else:
                raise Reject(400, f"the stand-in deletes by id or by *:* only, not {target}")
            if request.param("commit") == "true":
                self._visible = dict(self._latest)
        return {"responseHeader": {"status": 0, "QTime": 0}}

    def _duplicate(self, request: Recorded, body: bytes) -> dict:
        _allow(request, {"rank.by.id", "fl", "rows", "rank.threshold", "rank.approximate", "rank.smartfilter"})
        doc_id = request.param("rank.by.id")
        if not doc_id:
            raise Reject(400, "rank.by.id is required")
        rows = _integer(request, "rows", 10)
        threshold = _number(request, "rank.threshold", 0.0)
        if not 0 <= threshold <= 1:
            raise Reject(400, "rank.threshold must be in [0, 1]")
        if request.param("rank.approximate") not in (None, "true", "false"):
            raise Reject(400, "rank.approximate must be true or false")
        if request.param("rank.smartfilter") not in (None, *SMART_FILTERS):
            raise Reject(400, f"rank.smartfilter must be one of {SMART_FILTERS}")
        fields = (request.param("fl") or "id,score").split(",")
        if set(fields) - {"id", "score", "filename", "image"}:
            raise Reject(400, f"undefined field in fl={request.param('fl')!r}")
        with self._lock:
            query = self._visible.get(doc_id)
            if query is None:
                raise Reject(404, f"Document with id {doc_id!r} not found")
            scored = [(similarity(query["hash"], doc["hash"]), other, doc) for other, doc in self._visible.items()]
        if self.honour_threshold:
            scored = [entry for entry in scored if entry[0] >= threshold]
        scored.sort(key=lambda entry: (-entry[0], entry[1]))
        docs = [{**{k: doc[k] for k in fields if k != "score"}, **({"score": score} if "score" in fields else {})} for score, _, doc in scored[:rows]]
        return {"responseHeader": {"status": 0}, "response": {"numFound": len(scored), "start": 0, "maxScore": 1.0, "docs": docs}}


def _allow(request: Recorded, names: set[str]) -> None:
    unknown = sorted({key for key, _ in request.query} - names)
    if unknown:
        raise Reject(400, f"unknown parameter(s) for {request.endpoint}: {', '.join(unknown)}")
    repeated = sorted(key for key, count in Counter(key for key, _ in request.query).items() if count > 1)
    if repeated:
        raise Reject(400, f"parameter(s) given more than once: {', '.join(repeated)}")


def _integer(request: Recorded, name: str, default: int) -> int:
    text = request.param(name)
    if text is None:
        return default
    if not text.isdigit():
        raise Reject(400, f"{name} must be a non-negative integer, not {text!r}")
    return int(text)


def _number(request: Recorded, name: str, default: float) -> float:
    text = request.param(name)
    try:
        return default if text is None else float(text)
    except ValueError:
        raise Reject(400, f"{name} must be a number, not {text!r}") from None


def _json_body(request: Recorded, body: bytes) -> Any:
    if not request.content_type.startswith("application/json"):
        raise Reject(400, f"expected application/json, got {request.content_type!r}")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise Reject(400, f"body is not JSON: {error}") from None
    request.json = value
    return value


def _encode_mark(doc_id: str) -> str:
    return "AoE" + base64.urlsafe_b64encode(doc_id.encode("utf-8")).decode("ascii")


def _decode_mark(mark: str) -> str:
    try:
        return base64.urlsafe_b64decode(mark.removeprefix("AoE").encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise Reject(
            400, f"Unable to parse 'cursorMark' after totem: value must either be '*' or the nextCursorMark returned by a previous search: {mark}"
        ) from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    standin: FlowStandIn

    def process_request(self, request, client_address):
        with self.standin._lock:
            self.standin.connections_accepted += 1
            self.standin._open_sockets.add(request)
        # As Jetty does: no Nagle delay between a response's headers and its body.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.standin._lock:
            self.standin._open_sockets.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Jetty in front of Solr does
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        standin = self.server.standin
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        endpoint, handler = standin.route(method, split.path)
        request = Recorded(
            method=method,
            endpoint=endpoint,
            path=split.path,
            raw_query=split.query,
            query=parse_qsl(split.query, keep_blank_values=True),
            content_type=self.headers.get("Content-Type", ""),
            body_size=len(body),
        )
        if endpoint == "select" and request.param("rows") == "0":
            request.endpoint = endpoint = "count"
        if endpoint == "update" and request.param("softCommit") == "true" and not body.strip():
            request.endpoint = endpoint = "commit"
        with standin._lock:
            standin.requests.append(request)
        for fault in standin._take_faults(endpoint):
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif fault.kind == "status":
                return self._answer(fault.status, _error(fault.status, "stand-in: injected server error"))
            elif fault.kind == "malformed":
                return self._answer(200, fault.body)
        if handler is None:
            return self._answer(404, _error(404, f"no such endpoint: {method} {split.path}"))
        try:
            answer = handler(request, body)
        except Reject as rejection:
            return self._answer(rejection.status, _error(rejection.status, rejection.message))
        except Exception as error:  # a stand-in bug: say so loudly, as a 500
            return self._answer(500, _error(500, f"stand-in crashed: {type(error).__name__}: {error}"))
        self._answer(200, json.dumps(answer).encode("utf-8"))

    def _answer(self, status: int, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json;charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. timed out)
            self.close_connection = True


def _error(status: int, message: str) -> bytes:
    return json.dumps({"responseHeader": {"status": status, "QTime": 0}, "error": {"msg": message, "code": status}}).encode("utf-8")
