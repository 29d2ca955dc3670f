"""The embedded backend: local fingerprints in the state database, no server needed.

Indexing decodes and analyses each image in a process pool (a ``forkserver`` context, so
the workers never inherit the caller's threads, locks or database connections) and
stores the features in the ``features`` table under the content hash. Finding pairs
builds neighbour indexes over the stored fingerprints (multi-index hashing over the DCT
hashes of all eight orientations; an inverted-file index over ORB descriptors for crops
and overlays), and verifies every candidate pair geometrically (see dupe_scanner.analysis.verify),
but for those a twin of one picture (the same picture, to the eye) was asked with the other
in the same comparison, or that the state holds the twin's verdict on: they take the twin's
verdict (see dupe_scanner.analysis.twins).

Features written by another analyser version are ignored, as if missing: ``missing()``
and ``stale_hashes()`` tell the indexer which contents to analyse again.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
from sqlalchemy import Engine

from dupe_scanner.analysis.candidates import Candidates, propose
from dupe_scanner.analysis.features import ANALYSER, decode, decode_hash_rows
from dupe_scanner.analysis.fingerprints import Analysis, analyse_file
from dupe_scanner.analysis.pairing import ScoredBatch, score_batch
from dupe_scanner.analysis.twins import SettledVerdicts, TwinVerdicts
from dupe_scanner.analysis.verify import TIGHTENS, VERIFIER
from dupe_scanner.backends.base import VERIFIED, Health, ImageInfo, ScoredPair
from dupe_scanner.backends.hash_store import HashStore, HashTable
from dupe_scanner.backends.keypoint_store import KeypointStore
from dupe_scanner.errors import BackendUnavailable
from dupe_scanner.memory import release_memory
from dupe_scanner.store import contents as content_store
from dupe_scanner.store import fingerprints as stored
from dupe_scanner.workers import start_worker

log = logging.getLogger(__name__)

IDLE_RELEASE_SECONDS = 120.0  # worker processes stop after this long without work
BATCH_PAIRS = 200  # candidate pairs verified per task sent to a worker
DESCRIPTOR_CHUNK = 500  # contents whose descriptors are read and decoded at a time
# Contents compared from which idle workers (about 90 MB each) are stopped before the
# candidate search: a search of thousands holds hundreds of MB, and a second of starting the
# workers again is nothing beside its verification. Fewer (the service's scan of a few new
# pictures) keep them.
SEARCH_WITHOUT_WORKERS = 1_000


def arrival_order(analysed_at: np.ndarray, changed_rows: np.ndarray | None, as_given: bool = False) -> np.ndarray:
    """Each row's rank in the order the contents came: by analysis time, ties by row.

    A pair is proposed from its newer content's search only (see dupe_scanner.analysis.candidates),
    so a full scan and the incremental scans before it propose the same pairs. In an
    incremental scan the changed rows come after every other whatever the clock said, so
    that a clock set back never hides a new content from the library it joins; ``as_given``:
    in the order of ``changed_rows``, which the scan compares part by part.
    """
    later = np.zeros(len(analysed_at), dtype=np.int8)
    if changed_rows is not None:
        later[changed_rows] = 1
    order = np.lexsort((np.arange(len(analysed_at)), analysed_at, later))
    age = np.empty(len(analysed_at), dtype=np.int64)
    age[order] = np.arange(len(analysed_at))
    if as_given and changed_rows is not None:
        age[changed_rows] = len(analysed_at) - len(changed_rows) + np.arange(len(changed_rows))
    return age


def _after(progress: Callable[[str, int, int], None] | None, done: int) -> Callable[[str, int, int], None] | None:
    """``progress``, told of ``done`` pairs verified before."""
    if progress is None:
        return None
    return lambda step, verified, total: progress(step, done + verified, done + total)


def _rows_among(sorted_keys: np.ndarray, wanted: Collection[str]) -> np.ndarray:
    """The rows of ``sorted_keys`` (``HashTable.keys``) that are in ``wanted``, in row order."""
    return np.unique(_rows_in_order(sorted_keys, wanted))


def _rows_in_order(sorted_keys: np.ndarray, wanted: Collection[str]) -> np.ndarray:
    """The rows of ``wanted`` (those in ``sorted_keys``, ``HashTable.keys``), in the order of
    ``wanted``. By a binary search of the sorted keys, not a dictionary or a pass over a
    million strings: 0.4 CPU s of every scan of a library of a million, now under a millisecond."""
    asked = np.array(list(wanted), dtype="S64")
    if not len(asked) or not len(sorted_keys):
        return np.zeros(0, dtype=np.int64)
    at = np.minimum(np.searchsorted(sorted_keys, asked), len(sorted_keys) - 1)
    return at[sorted_keys[at] == asked].astype(np.int64)


def _hash_table(rows: list[tuple[str, bytes, float]]) -> HashTable:
    valid, hashes = decode_hash_rows([prefix for _, prefix, _ in rows])  # damaged rows: treated as missing
    keys = [key for (key, _, _), ok in zip(rows, valid.tolist(), strict=True) if ok]
    times = np.array([analysed_at for _, _, analysed_at in rows], dtype=np.float64)[valid]
    return HashTable.of(keys, hashes, times)


class EmbeddedBackend:
    kind = "embedded"
    compares_every_pair = False  # only the proposed candidates are verified
    comparison = f"{ANALYSER}+{VERIFIER}"

    def __init__(
        self, engine: Engine, workers: int, max_image_pixels: int, keypoint_file: Path | None = None, hash_file: Path | None = None
    ):
        self.engine = engine
        self.keypoints = KeypointStore(keypoint_file, ANALYSER)  # kept between scans where a file is given
        self.hashes = HashStore(hash_file, ANALYSER)  # likewise
        self.workers = max(1, workers)
        self.max_image_pixels = max_image_pixels
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._busy = 0  # submitted tasks not yet done
        self._submissions = 0  # ever submitted: tells an idle timer whether work came since

    # -- process pool -------------------------------------------------------------------

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise BackendUnavailable("the embedded backend is closed")
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=context, initializer=start_worker, initargs=(os.getpid(),)
                )
            return self._pool

    def _submit(self, fn, *args) -> Future:
        with self._lock:
            self._busy += 1
            self._submissions += 1
        try:
            pool = self._executor()
            try:
                future = pool.submit(fn, *args)
            except BrokenProcessPool:
                self._reset(pool)
                future = self._executor().submit(fn, *args)
        except BaseException:
            self._task_done()
            raise
        future.add_done_callback(lambda _future: self._task_done())
        return future

    def _task_done(self) -> None:
        """After the last task, let the worker processes go once they have idled a while.

        A long-running service spends most of its life idle; each worker holds about 80 MB
        (numpy, OpenCV, faiss). The pool is started again, lazily, by the next task.
        """
        with self._lock:
            self._busy -= 1
            if self._busy or self._closed or self._pool is None:
                return
            timer = threading.Timer(IDLE_RELEASE_SECONDS, self._release_if_idle, args=(self._submissions,))
        timer.daemon = True
        timer.start()

    def _release_if_idle(self, submissions_then: int) -> None:
        with self._lock:
            if self._submissions != submissions_then or not self._release_locked():
                return
        log.debug("embedded backend idle for %.0f s: analysis workers stopped", IDLE_RELEASE_SECONDS)

    def _release_locked(self) -> bool:
        """Stop the worker processes if no task runs (the lock held); whether they were stopped."""
        if self._busy or self._pool is None:
            return False
        pool, self._pool = self._pool, None
        pool.shutdown(wait=False)
        return True

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    # -- Backend protocol ---------------------------------------------------------------

    def health(self) -> Health:
        try:
            with self.engine.connect() as connection:
                current, stale = stored.counts(connection, ANALYSER)
        except Exception as error:  # health never raises
            return Health(False, f"embedded analyser {ANALYSER}: state database unusable ({error})")
        detail = f"embedded analyser {ANALYSER}, {current} contents analysed"
        if stale:
            detail += f", {stale} from an older analyser to analyse again"
        return Health(True, detail, documents=current)

    def index(self, content_hash: str, path: Path) -> ImageInfo:
        future = self._submit(analyse_file, str(path), self.max_image_pixels)
        try:
            analysis: Analysis = future.result()
        except BrokenProcessPool:
            pool = self._pool
            if pool is not None:
                self._reset(pool)
            raise BackendUnavailable(f"{path}: the analysis worker died (out of memory?); will retry") from None
        self._store(content_hash, analysis.blob)
        return ImageInfo(analysis.width, analysis.height, analysis.format)

    def _store(self, content_hash: str, blob: bytes) -> None:
        with self.engine.connect().execution_options(write=True) as connection, connection.begin():
            stored.store(connection, content_hash, ANALYSER, blob)

    def forget(self, content_hashes: Collection[str]) -> None:
        with self.engine.connect().execution_options(write=True) as connection, connection.begin():
            stored.forget(connection, content_hashes)
        # After the state's commit: a crash in between leaves the kept table holding rows the
        # state let go of, which the next scan notices (it no longer adds up) and reads whole.
        self.hashes.forget(content_hashes)

    def commit(self) -> None:
        """Every ``index`` call is committed as it finishes; nothing is buffered."""

    def clear(self) -> None:
        with self.engine.connect().execution_options(write=True) as connection, connection.begin():
            stored.forget_all(connection)
        self.keypoints.clear()
        self.hashes.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- versioning ------------------------------------------------------------------------

    def outdated(self) -> set[str]:
        """Contents the state knows that have no features of the current analyser: analysed
        by an older version, or whose features were lost (a crash between the state and
        the features, a damaged row). ``find_pairs`` cannot see them until indexed again."""
        with self.engine.connect() as connection:
            return stored.outdated(connection, ANALYSER)

    def stale_hashes(self) -> set[str]:
        """Contents whose stored features come from another analyser version: index them again."""
        with self.engine.connect() as connection:
            return stored.stale(connection, ANALYSER)

    def missing(self, content_hashes: Iterable[str]) -> set[str]:
        """Those of ``content_hashes`` with no features of the current analyser (never analysed, or stale)."""
        keys = set(content_hashes)
        with self.engine.connect() as connection:
            return keys - stored.present(connection, keys, ANALYSER)

    # -- finding pairs ----------------------------------------------------------------------

    def find_pairs(
        self,
        changed: Collection[str] | None,
        min_score: float,
        progress: Callable[[str, int, int], None] | None = None,
        pending: Collection[str] | None = None,
    ) -> Iterator[ScoredPair]:
        table = self._load_table(changed)
        keys, hashes, analysed_at = table.key_column(), table.hashes, table.analysed_at
        if not len(keys):
            return
        if changed is None:
            query_rows = np.arange(len(keys))
        else:
            query_rows = _rows_among(table.keys, changed)
            if not len(query_rows):
                return
        if pending is None:
            age = arrival_order(analysed_at, None if changed is None else query_rows)
        else:
            # The contents still to compare come after every other, in the order the scan
            # compares them: this part's searches do not reach the later parts'.
            age = arrival_order(analysed_at, _rows_in_order(table.keys, pending), as_given=True)
        if len(query_rows) >= SEARCH_WITHOUT_WORKERS:
            # A large search needs the memory idle workers hold, and what the part of a long
            # scan before it freed (its verdicts); the workers start again for its verification.
            with self._lock:
                self._release_locked()
            release_memory()
        points = self.keypoints.points(keys, lambda some: self._load_descriptors(some)[0], len(query_rows), table.keys)
        del table  # its sorted keys, 64 bytes a content, are not needed past here; its hashes are

        def descriptors_of(rows: list[int]) -> dict[int, list[np.ndarray]]:
            own, mirrored = self._load_descriptors([keys[row] for row in rows])
            return {row: [own[at], mirrored[at]] for at, row in enumerate(rows)}

        candidates = propose(keys, hashes, query_rows, points, descriptors_of, threads=self.workers, age=age)
        del points
        release_memory()  # the search's arrays, before the long verification
        held_back = int(candidates.waiting.held_back().sum())
        log.debug("%d candidate pairs among %d contents, %d held back until earned", len(candidates), len(keys), held_back)
        # Every candidate's verdict, rejected ones included (see Backend.find_pairs). Where the
        # scan compares its pending contents, the state's verdicts between contents compared
        # before are its comparison's: a twin's among them stand for its twin's too.
        settled = self._compared_pairs if pending is not None else None
        yield from self._verify_as_earned(candidates, keys, progress, age, settled)

    def _compared_pairs(self, wanted: Collection[tuple[str, str]]) -> Iterator[ScoredPair]:
        with self.engine.connect() as connection:
            yield from content_store.compared_pairs(connection, wanted)

    def _verify_as_earned(
        self,
        candidates: Candidates,
        keys: Sequence[str],
        progress: Callable[[str, int, int], None] | None,
        age: np.ndarray | None = None,
        settled: SettledVerdicts | None = None,
    ) -> Iterator[ScoredPair]:
        """The verdicts on ``candidates``: each query's twin candidate first (``analysis.twins``),
        then the others, then each block of waiting candidates a query earned: its block before
        held a verified pair (``candidates.WaitingCandidates``). A pair whose query turned out a
        twin, and whose twin was asked the same picture (or whose verdict ``settled`` holds),
        takes the twin's verdict."""
        twins = TwinVerdicts(keys, age, candidates.twins, settled)
        first = Candidates(candidates.twins)
        verified_first: list[ScoredPair] = []  # they may earn their query's next block
        for scored in self._verify(first.batches(keys, BATCH_PAIRS), len(first), progress) if len(first) else ():
            twins.learn(scored)
            if scored.score >= VERIFIED:
                verified_first.append(scored)
            yield scored
        asked, block, done = candidates, 0, len(first)
        while len(asked):
            queries_of = candidates.waiting.of_block(block, keys)
            earned = {queries_of[pair] for pair in ((scored.first, scored.second) for scored in verified_first) if pair in queries_of}
            verified_first = []
            rows, taken = twins.split(asked.rows)
            for scored in self._verify_round(Candidates(rows), taken, keys, twins, _after(progress, done)):
                if scored.score >= VERIFIED and (scored.first, scored.second) in queries_of:
                    earned.add(queries_of[scored.first, scored.second])
                yield scored
            done += len(rows) + len(taken)
            block += 1
            asked = candidates.waiting.earned(block, earned)

    def _verify_round(
        self,
        asked: Candidates,
        taken: list[tuple[int, int, int, int]],
        keys: Sequence[str],
        twins: TwinVerdicts,
        progress: Callable[[str, int, int], None] | None,
    ) -> Iterator[ScoredPair]:
        """The verdicts on ``asked``, then those ``taken`` from twins; a taken pair whose twin's
        verdict never came, or is near the line (``twins.UNSURE``), is verified after all."""
        total = len(asked) + len(taken)
        for scored in self._verify(asked.batches(keys, BATCH_PAIRS), total, progress):
            twins.learn(scored)
            yield scored
        verdicts, left = twins.resolve(taken)
        yield from verdicts
        if taken:
            log.debug("%d of %d candidate pairs took their verdict from a twin", len(verdicts), total)
        if len(left):
            for scored in self._verify(Candidates(left).batches(keys, BATCH_PAIRS), len(left)):
                twins.learn(scored)
                yield scored
        if progress is not None:
            progress("verifying candidate pairs", total, total)

    def verify_pairs(self, pairs: Sequence[tuple[str, str]]) -> Iterator[ScoredPair]:
        """The verdict on each of these pairs, asked outright rather than proposed by the search
        (``scanning.complete_groups``), by the same workers as ``find_pairs``'."""
        asked: list[tuple[str, str, int | None]] = [(first, second, None) for first, second in pairs]
        yield from self._verify((asked[start : start + BATCH_PAIRS] for start in range(0, len(asked), BATCH_PAIRS)), len(asked))

    def tightens(self, comparison: str) -> bool:
        """Whether ``comparison`` is this analyser's with a verifier this one only tightens
        (``verify.TIGHTENS``): its stored pairs need only the verified ones scored again."""
        return comparison in {f"{ANALYSER}+{verifier}" for verifier in TIGHTENS}

    def _load_hashes(self, changed: Collection[str] | None) -> tuple[list[str], np.ndarray, np.ndarray]:
        """``_load_table``'s keys (as strings), hashes and times of analysis."""
        table = self._load_table(changed)
        return table.key_list(), table.hashes, table.analysed_at

    def _load_table(self, changed: Collection[str] | None) -> HashTable:
        """Every analysed content's key, its hashes and when it was analysed (0 if the state
        does not know it: features left by a crash, which no pair will name), in key order;
        from the table kept since the last scan where it still adds up (``HashStore``)."""

        def read_all() -> HashTable:
            with self.engine.connect() as connection:
                return _hash_table(stored.hash_rows(connection, ANALYSER))

        def read_some(keys: Collection[str]) -> tuple[HashTable, int]:
            with self.engine.connect() as connection, connection.begin():
                return _hash_table(stored.hash_rows(connection, ANALYSER, keys)), stored.counts(connection, ANALYSER)[0]

        return self.hashes.table(changed, read_all, read_some)

    def _load_descriptors(self, keys: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """ORB descriptors of these contents (and of their mirror), in the order of ``keys``."""
        descriptors: list[np.ndarray] = []
        mirrored: list[np.ndarray] = []
        empty = np.zeros((0, 32), np.uint8)
        for start in range(0, len(keys), DESCRIPTOR_CHUNK):
            chunk = keys[start : start + DESCRIPTOR_CHUNK]
            blobs = self._load_blobs(set(chunk))
            for key in chunk:
                try:
                    decoded = decode(blobs[key])
                except (KeyError, ValueError):
                    descriptors.append(empty)
                    mirrored.append(empty)
                    continue
                descriptors.append(decoded.descriptors)
                mirrored.append(decoded.mirror_descriptors)
        return descriptors, mirrored

    def _verify(
        self,
        batches: Iterable[list[tuple[str, str, int | None]]],
        total: int,
        progress: Callable[[str, int, int], None] | None = None,
    ) -> Iterator[ScoredPair]:
        """The verdicts on ``total`` candidates (first key, second key, orientation hint), given a batch at a time."""
        pending: list[Future] = []
        verified = 0
        damaged: set[str] = set()

        def collected(future: Future) -> Iterator[ScoredPair]:
            nonlocal verified
            scored = self._collect(future)
            damaged.update(scored.damaged)
            for first, second, score in scored.scores:
                verified += 1
                yield ScoredPair.of(first, second, score)
            if progress is not None:
                progress("verifying candidate pairs", verified, total)

        for batch in batches:
            blobs = self._load_blobs({key for pair in batch for key in pair[:2]})
            batch = [pair for pair in batch if pair[0] in blobs and pair[1] in blobs]
            pending.append(self._submit(score_batch, blobs, batch))
            if len(pending) >= 2 * self.workers:
                yield from collected(pending.pop(0))
        for future in pending:
            yield from collected(future)
        if damaged:
            # Deleted, they are "outdated" (see ``outdated``): the next index run analyses their pictures again.
            self.forget(damaged)
            log.warning(
                "%d stored fingerprints were damaged (cut short by a full disk or a crash?) and were left out of this scan; "
                "their pictures are analysed again by the next 'dupe-scanner index' or start of the service",
                len(damaged),
            )

    @staticmethod
    def _collect(future: Future) -> ScoredBatch:
        try:
            return future.result()
        except BrokenProcessPool:
            raise BackendUnavailable("a verification worker died (out of memory?); scan again") from None

    def _load_blobs(self, keys: set[str]) -> dict[str, bytes]:
        with self.engine.connect() as connection:
            return stored.blobs(connection, keys, ANALYSER)


