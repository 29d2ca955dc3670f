"""The Flow 5 backend: analysis, storage and search by a Flow server over HTTP.

Flow (pixolution) is an image search engine that runs as an Apache Solr plugin; its HTTP
contract, as far as dupe-scanner uses it, is ``flow-api.md``. This module says what each
call means (analyse and store an image, commit, delete, count, list ids, find duplicates,
health); how a call travels (one shared session, timeouts, retries with backoff, and how a
failed or malformed answer becomes ``BackendUnavailable`` or ``BackendLimitReached``) is
``flow_http``. What this module adds to the contract:

- Ids are content hashes, so re-indexing a file replaces its doc and byte-identical
  files share one. Ids and paths only ever travel as query parameters or JSON, so no
  file name can change the meaning of a request.
- Every answer's content is checked for the shape each endpoint promises (a count, a
  list of docs with string ids, scores within [0, 1]); what is wrong becomes one
  ``BackendUnavailable`` naming the endpoint.
- Updates are made visible by a soft commit every ``commit_every`` docs and on
  ``commit()``, not after each file.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeGuard, TypeVar
from urllib.parse import quote_plus

import requests

from dupe_scanner.backends.base import Health, ImageInfo, ScoredPair
from dupe_scanner.backends.flow_http import (
    DOCKER_COMMAND,
    FlowError,
    FlowHttp,
    error_text,
    failure_reason,
    json_field,
    json_kind,
    new_session,
)
from dupe_scanner.errors import BackendUnavailable
from dupe_scanner.imaging import DEFAULT_MAX_PIXELS, open_upright
from dupe_scanner.settings import FlowSettings

log = logging.getLogger(__name__)

LIST_PAGE_ROWS = 1000
FIRST_DUPLICATE_ROWS = 50  # the original asked for 10 and so never saw a group larger than ten
HEALTH_READ_TIMEOUT = 10.0
SCORE_SLACK = 1e-6  # floating-point noise tolerated around [0, 1]

FORM_TYPE = "application/x-www-form-urlencoded"
_DATA_URI_PREFIX = quote_plus("data:image/png;base64,")

T = TypeVar("T")
R = TypeVar("R")

# (collection size up to, approximate search, smart filter), per scan mode, as the original chose them.
_SEARCH_OPTIONS = {
    "balanced": ((10_000, False, "off"), (100_000, False, "low"), (1_000_000, True, "medium"), (None, True, "high")),
    "speed": ((10_000, False, "high"), (100_000, False, "high"), (1_000_000, True, "high"), (None, True, "high")),
}


def search_options(collection_size: int, mode: str) -> tuple[bool, str]:
    """``(rank.approximate, rank.smartfilter)`` for a collection of this size in this scan mode."""
    try:
        table = _SEARCH_OPTIONS[mode]
    except KeyError:
        raise ValueError(f"unknown scan mode '{mode}' (known: {', '.join(_SEARCH_OPTIONS)})") from None
    for up_to, approximate, smartfilter in table:
        if up_to is None or collection_size <= up_to:
            return approximate, smartfilter
    raise AssertionError("unreachable: the last row has no bound")


class FlowBackend:
    """The ``Backend`` protocol on a Flow 5 server (see the module docstring)."""

    kind = "flow"
    compares_every_pair = True  # /duplicate ranks the whole collection
    comparison = "flow-duplicate"

    def __init__(
        self,
        settings: FlowSettings,
        mode: str,
        *,
        pool_size: int = 16,
        scan_workers: int = 4,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 15.0,
        max_image_pixels: int = DEFAULT_MAX_PIXELS,
        session: requests.Session | None = None,
    ):
        search_options(0, mode)  # refuse an unknown mode now, not at the first scan
        self.settings = settings
        self.mode = mode
        self.base = f"{settings.url}/api/cores/{settings.collection}"
        self.solr = f"{settings.url}/solr/{settings.collection}"
        self._scan_workers = max(1, scan_workers)
        self._max_pixels = max_image_pixels
        self._http = FlowHttp(
            settings, session or new_session(pool_size), backoff_seconds=backoff_seconds, max_backoff_seconds=max_backoff_seconds
        )
        self._lock = threading.Lock()
        self._uncommitted = 0

    # ----------------------------------------------------------------- indexing

    def index(self, content_hash: str, path: Path) -> ImageInfo:
        size = self.settings.thumbnail_size
        image, image_format, (width, height) = open_upright(path, draft_side=size, max_pixels=self._max_pixels)
        analysis = self._http.call(
            "analyze",
            "POST",
            f"{self.base}/analyze",
            params={"modules.apply": "duplicate", "logParamsList": ""},
            data=analyze_form(_png_base64(image, size)),
            headers={"Content-Type": FORM_TYPE},
        )
        outputs = analysis.get("outputs")
        if not isinstance(outputs, dict):
            raise BackendUnavailable(
                f"{self._http.where('analyze', f'{self.base}/analyze')}: the answer has no 'outputs' object "
                f"(got {json_kind(outputs)}); is this a Flow server?"
            )
        doc = {"id": content_hash, "image": _text(str(path)), "filename": _text(path.name), "import": outputs}
        self._http.call("update", "POST", f"{self.base}/update", json=doc)
        self._count_update()
        return ImageInfo(width=width, height=height, format=image_format)

    def _count_update(self) -> None:
        with self._lock:
            self._uncommitted += 1
            due = self._uncommitted >= self.settings.commit_every
        if due:
            try:
                self.commit()
            except BackendUnavailable as error:
                # The doc is stored; only its visibility waits. The next batch or commit() tries again.
                log.warning("periodic Flow commit failed, will retry with the next batch: %s", error)

    def commit(self) -> None:
        with self._lock:
            pending, self._uncommitted = self._uncommitted, 0
        try:
            self._http.call(
                "commit",
                "POST",
                f"{self.base}/update",
                params={"softCommit": "true", "openSearcher": "true", "waitSearcher": "true"},
            )
        except BaseException:
            with self._lock:
                self._uncommitted += pending
            raise

    def forget(self, content_hashes: Collection[str]) -> None:
        # One request per id: flow-api.md names only the single-id form of Solr's JSON delete.
        for content_hash in content_hashes:
            self._delete({"delete": {"id": content_hash}})

    def outdated(self) -> set[str]:
        """Flow analyses on the server; nothing indexed here goes out of date."""
        return set()

    def clear(self) -> None:
        self._delete({"delete": {"query": "*:*"}})
        with self._lock:
            self._uncommitted = 0

    def _delete(self, body: dict) -> None:
        # A hard commit (commit=true) also makes every pending update visible.
        self._http.call("delete", "POST", f"{self.solr}/update", params={"commit": "true"}, json=body)

    # ----------------------------------------------------------------- listing

    def document_count(self) -> int:
        """How many docs Flow holds and shows (committed ones)."""
        return self._count(retry=True)

    def _count(self, retry: bool) -> int:
        url = f"{self.base}/select"
        answer = self._http.call("count", "GET", url, params={"q": "*:*", "rows": 0}, retry=retry)
        found = json_field(answer, "response", "numFound")
        if not isinstance(found, int) or isinstance(found, bool) or found < 0:
            raise BackendUnavailable(f"{self._http.where('count', url)}: response.numFound is {json_kind(found)}, not a count")
        return found

    def document_ids(self) -> Iterator[str]:
        """Every id Flow holds, in id order, by Solr's cursorMark paging (safe on any size)."""
        url = f"{self.base}/select"
        where = self._http.where("list ids", url)
        mark = "*"
        while True:
            answer = self._http.call(
                "list ids",
                "GET",
                url,
                params={"q": "*:*", "rows": LIST_PAGE_ROWS, "fl": "id", "sort": "id asc", "cursorMark": mark},
            )
            docs = json_field(answer, "response", "docs")
            following = answer.get("nextCursorMark")
            if not isinstance(docs, list) or not isinstance(following, str):
                raise BackendUnavailable(f"{where}: the answer lacks response.docs or nextCursorMark")
            for doc in docs:
                doc_id = doc.get("id") if isinstance(doc, dict) else None
                if not isinstance(doc_id, str):
                    raise BackendUnavailable(f"{where}: a doc without a string id: {str(doc)[:80]}")
                yield doc_id
            if following == mark or len(docs) < LIST_PAGE_ROWS:  # a short page is the last one
                return
            mark = following

    # ----------------------------------------------------------------- searching

    def find_pairs(
        self,
        changed: Collection[str] | None,
        min_score: float,
        progress: Callable[[str, int, int], None] | None = None,
        pending: Collection[str] | None = None,  # Flow asks every changed content, whatever comes later
    ) -> Iterator[ScoredPair]:
        size = self.document_count()
        approximate, smartfilter = search_options(size, self.mode)
        ids = list(self.document_ids() if changed is None else sorted(set(changed)))
        seen: set[tuple[str, str]] = set()

        def duplicates_of(doc_id: str) -> list[tuple[str, float]]:
            return self._duplicates(doc_id, min_score, approximate, smartfilter, size)

        for asked, (doc_id, found) in enumerate(_ordered_map(duplicates_of, ids, self._scan_workers), start=1):
            if progress is not None:
                progress("asking Flow for neighbours", asked, len(ids))
            for other, score in found:
                pair = ScoredPair.of(doc_id, other, score)
                key = (pair.first, pair.second)
                if key not in seen:  # found again from the other side
                    seen.add(key)
                    yield pair

    def _duplicates(
        self, doc_id: str, min_score: float, approximate: bool, smartfilter: str, size: int
    ) -> list[tuple[str, float]]:
        """The docs like ``doc_id`` scoring at least ``min_score``, growing ``rows`` until all are seen."""
        url = f"{self.base}/duplicate"
        where = self._http.where("duplicate", url)
        rows = FIRST_DUPLICATE_ROWS
        while True:
            params = {
                "rank.by.id": doc_id,
                "fl": "id,score,filename,image",
                "rows": rows,
                "rank.threshold": f"{min_score:g}",
                "rank.approximate": "true" if approximate else "false",
                "rank.smartfilter": smartfilter,
            }
            try:
                answer = self._http.call("duplicate", "GET", url, params=params)
            except FlowError as error:
                if error.http_status == 404 or "not found" in error.flow_message.lower():
                    # Forgotten or never committed since the caller listed it: nothing to compare.
                    log.info("Flow has no doc %s to compare (%s); skipped", doc_id, error.flow_message)
                    return []
                raise
            docs = json_field(answer, "response", "docs")
            if not isinstance(docs, list):
                raise BackendUnavailable(f"{where}: the answer has no response.docs list")
            if len(docs) < rows or rows > size:
                break
            # A full page: there may be more. Grow geometrically rather than trust numFound,
            # whose meaning on /duplicate (matches above the threshold, or every doc ranked?)
            # flow-api.md does not state.
            rows *= 4
        result = []
        for doc in docs:
            other = doc.get("id") if isinstance(doc, dict) else None
            score = doc.get("score") if isinstance(doc, dict) else None
            if not isinstance(other, str) or not _is_number(score):
                raise BackendUnavailable(f"{where}: a doc without a string id and a numeric score: {str(doc)[:80]}")
            if not -SCORE_SLACK <= score <= 1 + SCORE_SLACK:
                raise BackendUnavailable(f"{where}: score {score} for {other} is outside [0, 1]")
            score = min(1.0, max(0.0, float(score)))
            if other != doc_id and score >= min_score:
                result.append((other, score))
        return result

    # ----------------------------------------------------------------- health

    def health(self) -> Health:
        url = self.settings.url
        collection = self.settings.collection
        try:
            response = self._http.session.get(
                self.base, timeout=(self.settings.connect_timeout, min(self.settings.read_timeout, HEALTH_READ_TIMEOUT))
            )
        except requests.Timeout:
            return Health(False, f"Flow at {url} did not answer in time: it may be starting up or overloaded; try again shortly")
        except requests.RequestException as error:
            return Health(
                False,
                f"Flow at {url} is not reachable: {failure_reason(error)} — start it with `{DOCKER_COMMAND}`, "
                "or set backend.flow.url to where it runs",
            )
        if response.status_code == 404:
            return Health(
                False,
                f"Flow at {url} answers, but has no collection '{collection}' (HTTP 404): "
                "check backend.flow.collection",
            )
        if response.status_code != 200:
            return Health(False, f"Flow at {url} answered HTTP {response.status_code}: {error_text(response)}")
        try:
            count = self._count(retry=False)
        except BackendUnavailable as error:
            return Health(False, f"Flow at {url} answers, but counting its documents failed: {error}")
        return Health(True, f"Flow at {url}, collection '{collection}': {count:,} documents", documents=count)

    def close(self) -> None:
        with self._lock:
            pending = self._uncommitted
        if pending:
            try:
                self.commit()
            except BackendUnavailable as error:
                log.warning("could not commit %d updates while closing the Flow backend: %s", pending, error)
        self._http.session.close()


def _png_base64(image, long_side: int) -> str:
    """The image shrunk to ``long_side`` (never enlarged) as base64 PNG, as the original uploaded."""
    image.thumbnail((long_side, long_side))
    buffer = io.BytesIO()
    # zlib level 1: a 350 px photo encodes in ~8 ms instead of ~37 ms at the default 6, ~15 % larger.
    image.save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def analyze_form(png_base64: str) -> bytes:
    """The form ``input.data=data:image/png;base64,...``, URL-encoded exactly as ``urlencode`` would.

    Done by hand because the standard encoder loops in Python over every byte: for a 150 kB
    thumbnail that took more CPU than decoding and encoding the image together. Base64 holds
    only letters, digits and ``+/=``, so three replacements encode it.
    """
    encoded = png_base64.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    return f"input.data={_DATA_URI_PREFIX}{encoded}".encode("ascii")


def _ordered_map(function: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[tuple[T, R]]:
    """``(item, function(item))`` in order, computed by ``workers`` threads, a bounded window ahead."""
    window: deque[tuple[T, Future]] = deque()
    pool = ThreadPoolExecutor(workers, thread_name_prefix="flow-scan")
    try:
        for item in items:
            window.append((item, pool.submit(function, item)))
            if len(window) >= workers * 4:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: str) -> str:
    """Paths that are not valid UTF-8 (surrogate-escaped bytes) as displayable text for Flow."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
