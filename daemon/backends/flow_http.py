"""HTTP transport to a Flow server: the session, timeouts, retries, and how failures map to errors.

What a Flow call means is ``flow``'s business; this module only carries calls there and back:

- One ``requests.Session`` shared by every indexer thread (``new_session``), with a
  connection pool sized for them and no retries of its own.
- ``FlowHttp.call`` sends one request with explicit (connect, read) timeouts, and retries
  connection failures and 5xx answers with jittered exponential backoff, a bounded number
  of times. POSTs are retried too: ``analyze`` has no side effect and ``update`` replaces
  the doc with the same id. A read timeout is not retried (a server that is alive but slow
  gets no extra load); the indexer's own per-file backoff tries again later.
- Every answer is checked: not JSON, not a JSON object, or a Solr error all become one
  ``BackendUnavailable`` naming the endpoint and what was wrong (``FlowError`` when Flow
  itself reported the error), except an error that mentions Flow's "document limit",
  which becomes ``BackendLimitReached``.
"""

from __future__ import annotations

import random
import socket
import time
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from dupe_scanner.errors import BackendLimitReached, BackendUnavailable
from dupe_scanner.settings import FlowSettings

DOCKER_COMMAND = "docker run -d --rm -p8983:8983 --name local-flow-server pixolution/flow"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
LIMIT_MARKER = "document limit"


class FlowError(BackendUnavailable):
    """Flow answered with an error (HTTP status >= 400 or ``responseHeader.status`` != 0)."""

    def __init__(self, message: str, http_status: int, flow_message: str):
        super().__init__(message)
        self.http_status = http_status
        self.flow_message = flow_message


class FlowHttp:
    """Calls to one Flow server over one session: ``call`` returns the answer's JSON object or raises."""

    def __init__(self, settings: FlowSettings, session: requests.Session, *, backoff_seconds: float, max_backoff_seconds: float):
        self.settings = settings
        self.session = session
        self._timeout = (settings.connect_timeout, settings.read_timeout)
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds

    def call(self, name: str, method: str, url: str, *, retry: bool = True, **kwargs: Any) -> dict:
        """Send one request (retrying what is safe to retry) and return its answer's JSON object."""
        where = self.where(name, url)
        attempts = 1 + (self.settings.retries if retry else 0)
        failure = ""
        for attempt in range(attempts):
            if attempt:
                time.sleep(self._delay(attempt))
            try:
                response = self.session.request(method, url, timeout=self._timeout, **kwargs)
            except requests.ConnectTimeout:
                failure = f"not reachable: no connection within {self.settings.connect_timeout:g} s"
                continue
            except requests.ReadTimeout:
                raise BackendUnavailable(
                    f"{where}: no answer within {self.settings.read_timeout:g} s (backend.flow.read_timeout); "
                    "Flow is overloaded or stuck"
                ) from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
                failure = f"not reachable: {failure_reason(error)}"
                continue
            except requests.RequestException as error:
                raise BackendUnavailable(f"{where}: {error}") from None
            if response.status_code in RETRY_STATUSES and LIMIT_MARKER not in response.text.lower():
                failure = f"HTTP {response.status_code}: {error_text(response)}"
                continue
            return self._parse(where, response)
        hint = f" — is Flow running? (`{DOCKER_COMMAND}`)" if failure.startswith("not reachable") else ""
        tries = f" (tried {attempts} times)" if attempts > 1 else ""
        raise BackendUnavailable(f"{where}: {failure}{tries}{hint}")

    def _parse(self, where: str, response: requests.Response) -> dict:
        try:
            answer = response.json()
        except (ValueError, RecursionError):  # RecursionError: nested too deeply to decode
            raise BackendUnavailable(
                f"{where}: the answer is not JSON (HTTP {response.status_code}, "
                f"{response.headers.get('Content-Type', 'no content type')}, starts {response.text[:60]!r})"
            ) from None
        if not isinstance(answer, dict):
            raise BackendUnavailable(f"{where}: the answer is {json_kind(answer)}, not a JSON object")
        status = json_field(answer, "responseHeader", "status")
        if response.status_code >= 400 or status not in (None, 0):
            message = json_field(answer, "error", "msg")
            message = message if isinstance(message, str) and message else f"no error message (HTTP {response.status_code})"
            if LIMIT_MARKER in message.lower():
                raise BackendLimitReached(
                    "Flow refuses more images: its document limit is reached (the free Starter edition holds "
                    "5,000). The remaining files stay pending; remove images, or move to a larger Flow edition, "
                    f"then index again. Flow said: {message}"
                )
            raise FlowError(f"{where}: Flow reported an error (HTTP {response.status_code}): {message}", response.status_code, message)
        return answer

    def where(self, name: str, url: str) -> str:
        return f"Flow {name} at {url}"

    def _delay(self, attempt: int) -> float:
        ceiling = min(self._max_backoff, self._backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def new_session(pool_size: int) -> requests.Session:
    """The session FlowBackend uses: ``pool_size`` keep-alive connections, no retries of its own."""
    session = requests.Session()
    # max_retries=0: retrying is ours (it must see the answer's body to spot the document limit).
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"Accept": "application/json", "User-Agent": "dupe-scanner"})
    return session


def failure_reason(error: BaseException) -> str:
    """A short human reason for a connection failure, from the chain of causes."""
    seen = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, socket.gaierror):
            return "host name not found"
        if isinstance(current, ConnectionResetError):
            return "connection reset"
        for attribute in ("reason", "__cause__", "__context__"):
            nested = getattr(current, attribute, None)
            if isinstance(nested, BaseException):
                pending.append(nested)
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    text = str(error)
    return text if len(text) <= 160 else text[:157] + "..."


def error_text(response: requests.Response) -> str:
    try:
        message = json_field(response.json(), "error", "msg")
    except ValueError:
        message = None
    if isinstance(message, str) and message:
        return message
    return response.reason or "no details"


def json_field(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


_JSON_KINDS = {dict: "a JSON object", list: "a JSON array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}


def json_kind(value: Any) -> str:
    return "nothing" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)
