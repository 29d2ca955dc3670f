"""The Flow backend against the stand-in Flow server, over real HTTP on loopback."""

from __future__ import annotations

import base64
import os
import threading
import time
from urllib.parse import urlencode

import pytest
from PIL import Image

from dupe_scanner.backends.base import ScoredPair
from dupe_scanner.backends.flow import FlowBackend, FlowError, analyze_form, search_options
from dupe_scanner.errors import BackendLimitReached, BackendUnavailable, FileVanished, UnreadableImage
from dupe_scanner.settings import FlowSettings
from tests.flow_standin import FlowStandIn
from tests.flow_standin.fixtures import standin_settings
from tests.flow_standin.pictures import picture, write_picture

HOSTILE_NAME = "a b&c=d#e?f%20g+h;i ü 日本.png"
HOSTILE_ID = "id with space&x=1#frag?q=%25+plus/ü"


def backend_for(standin: FlowStandIn, mode: str = "balanced", **overrides) -> FlowBackend:
    return FlowBackend(standin_settings(standin, **overrides), mode, backoff_seconds=0.01)


# ------------------------------------------------------------------ indexing


def test_index_uploads_an_upright_png_thumbnail_and_stores_the_doc(flow_standin, flow_backend, tmp_path):
    path = write_picture(tmp_path / "photo.jpg", seed=1, size=(1600, 1200))

    info = flow_backend.index("hash1", path)

    assert (info.width, info.height, info.format) == (1600, 1200, "JPEG")
    [analyze] = flow_standin.requests_to("analyze")
    assert analyze.upload["format"] == "PNG"
    assert analyze.upload["width"] == 350 and analyze.upload["height"] in (262, 263)  # rounding after draft decoding
    assert analyze.param("modules.apply") == "duplicate"
    assert analyze.param("logParamsList") == ""
    assert "logParamsList=" in analyze.raw_query
    assert flow_standin.written["hash1"]["image"] == str(path)
    assert flow_standin.written["hash1"]["filename"] == "photo.jpg"


def test_the_hand_made_form_is_what_urlencode_makes():
    for payload in (b"", b"\xfb\xff\xfe", bytes(range(256)) * 3):
        encoded = base64.b64encode(payload).decode("ascii")
        expected = urlencode({"input.data": "data:image/png;base64," + encoded}).encode("ascii")
        assert analyze_form(encoded) == expected


def test_exif_orientation_is_applied_before_upload(flow_standin, flow_backend, tmp_path):
    path = write_picture(tmp_path / "rotated.jpg", seed=2, size=(400, 300), exif_orientation=6)

    info = flow_backend.index("rotated", path)

    assert (info.width, info.height) == (300, 400)
    [analyze] = flow_standin.requests_to("analyze")
    assert analyze.upload["width"] in (262, 263) and analyze.upload["height"] == 350


def test_small_images_are_not_enlarged(flow_standin, flow_backend, tmp_path):
    flow_backend.index("small", write_picture(tmp_path / "small.png", seed=3, size=(100, 80)))

    [analyze] = flow_standin.requests_to("analyze")
    assert (analyze.upload["width"], analyze.upload["height"]) == (100, 80)


@pytest.mark.parametrize("suffix", [".webp", ".tiff", ".bmp", ".gif"])
def test_formats_flow_does_not_read_are_converted_to_png(flow_standin, flow_backend, tmp_path, suffix):
    info = flow_backend.index("h", write_picture(tmp_path / f"image{suffix}", seed=4))

    assert info.format == {".webp": "WEBP", ".tiff": "TIFF", ".bmp": "BMP", ".gif": "GIF"}[suffix]
    assert flow_standin.requests_to("analyze")[0].upload["format"] == "PNG"


def test_an_unreadable_file_fails_before_any_request(flow_standin, flow_backend, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")

    with pytest.raises(UnreadableImage):
        flow_backend.index("broken", broken)
    with pytest.raises(FileVanished):
        flow_backend.index("gone", tmp_path / "missing.jpg")
    assert flow_standin.counts["analyze"] == 0


def test_two_requests_per_image_and_one_commit_per_batch(flow_standin, tmp_path):
    backend = backend_for(flow_standin, commit_every=5)
    paths = [write_picture(tmp_path / f"{n}.jpg", seed=n) for n in range(12)]

    for n, path in enumerate(paths):
        backend.index(f"h{n}", path)

    assert flow_standin.counts["analyze"] == 12
    assert flow_standin.counts["update"] == 12
    assert flow_standin.counts["commit"] == 2
    assert len(flow_standin.documents) == 10  # the last two wait for the next commit
    backend.commit()
    assert len(flow_standin.documents) == 12
    backend.close()


def test_documents_are_invisible_until_committed(flow_standin, flow_backend, tmp_path):
    flow_backend.index("h1", write_picture(tmp_path / "a.jpg", seed=1))
    flow_backend.index("h2", write_picture(tmp_path / "b.png", seed=1))

    assert flow_backend.document_count() == 0
    assert list(flow_backend.find_pairs(None, 0.6)) == []
    flow_backend.commit()
    assert flow_backend.document_count() == 2
    assert [pair.first for pair in flow_backend.find_pairs(None, 0.6)] == ["h1"]


def test_close_commits_what_is_pending(flow_standin, tmp_path):
    backend = backend_for(flow_standin)
    backend.index("h1", write_picture(tmp_path / "a.jpg", seed=1))
    backend.close()

    assert set(flow_standin.documents) == {"h1"}


def test_indexing_the_same_content_again_replaces_its_doc(flow_standin, flow_backend, tmp_path):
    first = write_picture(tmp_path / "first.jpg", seed=5)
    moved = tmp_path / "sub" / "moved.jpg"
    moved.parent.mkdir()
    os.replace(first, moved)
    flow_backend.index("same", write_picture(tmp_path / "first.jpg", seed=5))
    flow_backend.index("same", moved)
    flow_backend.commit()

    assert flow_backend.document_count() == 1
    assert list(flow_backend.document_ids()) == ["same"]
    assert flow_standin.documents["same"]["image"] == str(moved)


def test_concurrent_indexing_from_many_threads(flow_standin, tmp_path):
    backend = backend_for(flow_standin, commit_every=10)
    paths = [write_picture(tmp_path / f"{n}.jpg", seed=n, size=(120, 90)) for n in range(120)]
    errors = []

    def work(chunk):
        try:
            for n in chunk:
                backend.index(f"h{n:03d}", paths[n])
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(range(k, 120, 8),)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    backend.commit()

    assert errors == []
    assert sorted(backend.document_ids()) == [f"h{n:03d}" for n in range(120)]
    assert flow_standin.counts["commit"] in (12, 13)  # 12 batches of ten, plus the final one if any remained
    assert flow_standin.connections_accepted <= 12  # the pool reuses its connections
    backend.close()


# ------------------------------------------------------------------ ids and paths


def test_hostile_ids_and_paths_arrive_intact(flow_standin, flow_backend, tmp_path):
    folder = tmp_path / "with space & #hash ?q=1 %41"
    path = write_picture(folder / HOSTILE_NAME, seed=6)
    flow_backend.index(HOSTILE_ID, path)
    flow_backend.index("plain", write_picture(tmp_path / "copy.png", seed=6))
    flow_backend.commit()

    [update] = [r for r in flow_standin.requests_to("update") if r.json["id"] == HOSTILE_ID]
    assert update.json == {"id": HOSTILE_ID, "image": str(path), "filename": HOSTILE_NAME, "import": update.json["import"]}
    assert list(flow_backend.document_ids()) == sorted([HOSTILE_ID, "plain"])
    assert list(flow_backend.find_pairs([HOSTILE_ID], 0.6)) == [ScoredPair.of(HOSTILE_ID, "plain", 1.0)]
    [duplicate] = flow_standin.requests_to("duplicate")
    assert duplicate.param("rank.by.id") == HOSTILE_ID
    assert all(request.path.startswith(("/api/cores/my-collection", "/solr/my-collection")) for request in flow_standin.requests)
    assert all(HOSTILE_ID not in request.path for request in flow_standin.requests)

    flow_backend.forget([HOSTILE_ID])
    assert list(flow_backend.document_ids()) == ["plain"]
    assert flow_standin.requests_to("delete")[0].json == {"delete": {"id": HOSTILE_ID}}


def test_a_file_name_that_is_not_utf8_is_sent_as_text(flow_standin, flow_backend, tmp_path):
    name = os.fsdecode(b"caf\xe9 \xff.png")  # Latin-1 bytes on a UTF-8 system: surrogate escapes
    path = tmp_path / name
    picture(7).save(path, format="PNG")

    flow_backend.index("latin1", path)

    stored = flow_standin.written["latin1"]
    assert stored["filename"] == "caf\ufffd \ufffd.png"
    assert stored["image"].endswith("caf\ufffd \ufffd.png")


# ------------------------------------------------------------------ forget and clear


def test_forget_and_clear(flow_standin, flow_backend, tmp_path):
    for n in range(3):
        flow_backend.index(f"h{n}", write_picture(tmp_path / f"{n}.jpg", seed=n))
    flow_backend.commit()

    flow_backend.forget(["h1", "not-there"])
    assert list(flow_backend.document_ids()) == ["h0", "h2"]

    flow_backend.index("h3", write_picture(tmp_path / "3.jpg", seed=3))  # pending when cleared
    flow_backend.clear()
    assert flow_backend.document_count() == 0
    assert flow_standin.written == {}
    assert flow_standin.requests_to("delete")[-1].json == {"delete": {"query": "*:*"}}
    assert all(r.param("commit") == "true" for r in flow_standin.requests_to("delete"))


# ------------------------------------------------------------------ listing


def test_document_ids_pages_with_cursor_mark(flow_standin, flow_backend):
    image = picture(1, (64, 48))
    ids = [f"doc{n:05d}" for n in range(2500)]
    for doc_id in ids:
        flow_standin.put_document(doc_id, image)

    assert list(flow_backend.document_ids()) == ids
    assert flow_backend.document_count() == 2500
    marks = [r.param("cursorMark") for r in flow_standin.requests_to("select")]
    assert len(marks) == 3 and marks[0] == "*" and len(set(marks)) == 3
    assert all(r.param("sort") == "id asc" and r.param("fl") == "id" for r in flow_standin.requests_to("select"))


def test_document_ids_of_an_empty_collection(flow_standin, flow_backend):
    assert list(flow_backend.document_ids()) == []
    assert flow_backend.document_count() == 0


# ------------------------------------------------------------------ duplicates


@pytest.fixture
def family(flow_backend, tmp_path):
    """An original, three edited copies of it, and five unrelated pictures, indexed and committed."""
    original = write_picture(tmp_path / "original.jpg", seed=10, size=(640, 480))
    Image.open(original).resize((320, 240)).save(tmp_path / "smaller.png")
    Image.open(original).save(tmp_path / "lowq.jpg", quality=40)
    Image.open(original).convert("L").save(tmp_path / "grey.jpg")
    for name in ("original.jpg", "smaller.png", "lowq.jpg", "grey.jpg"):
        flow_backend.index(name.split(".")[0], tmp_path / name)
    for n in range(5):
        flow_backend.index(f"other{n}", write_picture(tmp_path / f"other{n}.jpg", seed=100 + n))
    flow_backend.commit()
    return {"grey", "lowq", "original", "smaller"}


def test_find_pairs_finds_the_edited_copies_and_nothing_else(flow_standin, flow_backend, family):
    pairs = list(flow_backend.find_pairs(None, 0.6))

    assert {(p.first, p.second) for p in pairs} == {(a, b) for a in family for b in family if a < b}
    assert len(pairs) == len({(p.first, p.second) for p in pairs}) == 6  # each pair once
    assert all(0.6 <= p.score <= 1.0 and p.first < p.second for p in pairs)
    assert flow_standin.counts["duplicate"] == 9  # one query per doc


def test_scores_below_the_minimum_are_dropped_client_side(flow_standin, flow_backend, family):
    flow_standin.honour_threshold = False  # the server returns everything it has

    pairs = list(flow_backend.find_pairs(None, 0.6))

    assert {p.first for p in pairs} | {p.second for p in pairs} == family
    assert all(p.score >= 0.6 for p in pairs)


def test_incremental_find_pairs_only_queries_the_changed(flow_standin, flow_backend, family):
    pairs = list(flow_backend.find_pairs(["smaller", "other0"], 0.6))

    assert {(p.first, p.second) for p in pairs} == {("original", "smaller"), ("lowq", "smaller"), ("grey", "smaller")}
    assert sorted(r.param("rank.by.id") for r in flow_standin.requests_to("duplicate")) == ["other0", "smaller"]


def test_a_changed_id_flow_does_not_hold_is_skipped(flow_standin, flow_backend, family):
    assert list(flow_backend.find_pairs(["forgotten-meanwhile"], 0.6)) == []


def test_groups_larger_than_ten_are_seen_whole(flow_standin, flow_backend, tmp_path):
    path = write_picture(tmp_path / "same.jpg", seed=11, size=(64, 48))
    for n in range(130):  # 130 docs alike: more than the first 50 rows
        flow_backend.index(f"copy{n:03d}", path)
    flow_backend.index("unrelated", write_picture(tmp_path / "other.jpg", seed=12))
    flow_backend.commit()

    pairs = list(flow_backend.find_pairs(None, 0.9))

    assert len(pairs) == 130 * 129 // 2
    rows = [int(r.param("rows")) for r in flow_standin.requests_to("duplicate")]
    assert min(rows) == 50 and max(rows) == 200  # grown fourfold once the first page came back full


def test_search_options_follow_the_table_of_flow_api(flow_standin, tmp_path):
    assert search_options(10_000, "balanced") == (False, "off")
    assert search_options(10_001, "balanced") == (False, "low")
    assert search_options(100_001, "balanced") == (True, "medium")
    assert search_options(1_000_001, "balanced") == (True, "high")
    assert search_options(5, "speed") == (False, "high")
    assert search_options(100_001, "speed") == (True, "high")
    with pytest.raises(ValueError):
        FlowBackend(standin_settings(flow_standin), "fastest")

    backend = backend_for(flow_standin, mode="speed")
    backend.index("a", write_picture(tmp_path / "a.jpg", seed=1))
    backend.commit()
    list(backend.find_pairs(None, 0.75))
    [query] = flow_standin.requests_to("duplicate")
    assert (query.param("rank.approximate"), query.param("rank.smartfilter"), query.param("rank.threshold")) == ("false", "high", "0.75")
    assert query.param("fl") == "id,score,filename,image"


# ------------------------------------------------------------------ the Starter limit


@pytest.mark.parametrize("status", [400, 500])
def test_the_document_limit_stops_with_one_clear_message(flow_standin, flow_backend, tmp_path, status):
    flow_standin.document_limit = 3
    flow_standin.limit_status = status
    for n in range(3):
        flow_backend.index(f"h{n}", write_picture(tmp_path / f"{n}.jpg", seed=n))
    updates = flow_standin.counts["update"]

    with pytest.raises(BackendLimitReached) as caught:
        flow_backend.index("h3", write_picture(tmp_path / "3.jpg", seed=3))

    assert "document limit" in str(caught.value) and "5,000" in str(caught.value)
    assert flow_standin.counts["update"] == updates + 1  # not retried, even as a 500
    flow_backend.index("h1", tmp_path / "1.jpg")  # replacing an existing doc is still allowed
    flow_backend.commit()
    assert flow_backend.document_count() == 3


# ------------------------------------------------------------------ faults


def test_connection_refused_is_unavailable_quickly(flow_standin, flow_backend, tmp_path):
    path = write_picture(tmp_path / "a.jpg", seed=1)
    flow_standin.refuse_connections()

    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        flow_backend.index("h", path)

    assert time.monotonic() - started < 1.0
    message = str(caught.value)
    assert "analyze" in message and "connection refused" in message and "tried 3 times" in message
    health = flow_backend.health()
    assert not health.reachable
    assert f"Flow at {flow_standin.url} is not reachable: connection refused" in health.detail
    assert "docker run" in health.detail


def test_work_resumes_when_flow_is_back(flow_standin, flow_backend, tmp_path):
    path = write_picture(tmp_path / "a.jpg", seed=1)
    flow_backend.index("before", path)  # opens pooled keep-alive connections
    flow_standin.refuse_connections()
    with pytest.raises(BackendUnavailable):
        flow_backend.index("during", path)

    flow_standin.accept_connections()
    flow_backend.index("after", path)
    flow_backend.commit()

    assert flow_backend.health().reachable
    assert sorted(flow_backend.document_ids()) == ["after", "before"]


def test_500s_are_retried_for_posts_too(flow_standin, flow_backend, tmp_path):
    flow_standin.fail_next(2, status=500, endpoint="analyze")
    flow_standin.fail_next(1, status=503, endpoint="update")

    flow_backend.index("h", write_picture(tmp_path / "a.jpg", seed=1))

    assert flow_standin.counts["analyze"] == 3
    assert flow_standin.counts["update"] == 2
    assert set(flow_standin.written) == {"h"}


def test_500s_that_persist_give_up_after_the_retries(flow_standin, flow_backend, tmp_path):
    flow_standin.fail_next(None, status=503, endpoint="analyze")

    with pytest.raises(BackendUnavailable) as caught:
        flow_backend.index("h", write_picture(tmp_path / "a.jpg", seed=1))

    assert "Flow analyze at" in str(caught.value) and "HTTP 503" in str(caught.value)
    assert flow_standin.counts["analyze"] == 3  # 1 + retries


def test_malformed_json_names_the_endpoint(flow_standin, flow_backend, tmp_path):
    path = write_picture(tmp_path / "a.jpg", seed=1)
    flow_standin.malformed_next(1, endpoint="analyze")

    with pytest.raises(BackendUnavailable) as caught:
        flow_backend.index("h", path)

    assert str(caught.value).startswith(f"Flow analyze at {flow_standin.url}/api/cores/my-collection/analyze: the answer is not JSON")
    depth = 100_000  # too deeply nested for the JSON decoder
    flow_standin.malformed_next(1, endpoint="analyze", body=b'{"outputs": ' + b"[" * depth + b"]" * depth + b"}")
    with pytest.raises(BackendUnavailable, match="the answer is not JSON"):
        flow_backend.index("h", path)
    flow_standin.malformed_next(1, endpoint="analyze", body=b'{"responseHeader": {"status": 0}}')
    with pytest.raises(BackendUnavailable, match="no 'outputs' object"):
        flow_backend.index("h", path)
    flow_standin.malformed_next(1, endpoint="count", body=b'{"response": {"numFound": "many"}}')
    with pytest.raises(BackendUnavailable, match=r"Flow count at .*numFound"):
        flow_backend.document_count()
    flow_standin.malformed_next(1, endpoint="select", body=b"[1, 2]")
    with pytest.raises(BackendUnavailable, match=r"Flow list ids at .*JSON array"):
        list(flow_backend.document_ids())
    flow_standin.malformed_next(1, endpoint="duplicate", body=b'{"response": {"docs": [{"id": "x", "score": 7}]}}')
    flow_backend.index("h", path)
    flow_backend.commit()
    with pytest.raises(BackendUnavailable, match=r"Flow duplicate at .*outside"):
        list(flow_backend.find_pairs(None, 0.6))


def test_a_slow_answer_times_out(flow_standin, tmp_path):
    backend = backend_for(flow_standin, read_timeout=0.3)
    flow_standin.slow(3.0, endpoint="analyze")

    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"Flow analyze at .*no answer within 0\.3 s"):
        backend.index("h", write_picture(tmp_path / "a.jpg", seed=1))

    assert time.monotonic() - started < 2.0  # read timeouts are not retried: 3 tries would take 3 x 3 s
    backend.close()


def test_flow_errors_carry_its_message(flow_standin, flow_backend, tmp_path):
    flow_standin.fail_next(1, status=400, endpoint="update")

    with pytest.raises(FlowError, match=r"Flow update at .*HTTP 400.*injected server error"):
        flow_backend.index("h", write_picture(tmp_path / "a.jpg", seed=1))


def test_a_failed_periodic_commit_does_not_fail_the_image(flow_standin, tmp_path):
    backend = backend_for(flow_standin, commit_every=1, retries=0)
    flow_standin.fail_next(1, status=500, endpoint="commit")

    backend.index("h1", write_picture(tmp_path / "a.jpg", seed=1))  # the commit after it fails
    assert flow_standin.documents == {}
    backend.index("h2", write_picture(tmp_path / "b.jpg", seed=2))  # the next commit succeeds

    assert set(flow_standin.documents) == {"h1", "h2"}
    backend.close()


# ------------------------------------------------------------------ health


def test_health_counts_documents(flow_standin, flow_backend, tmp_path):
    flow_backend.index("h", write_picture(tmp_path / "a.jpg", seed=1))
    flow_backend.commit()

    health = flow_backend.health()

    assert health.reachable and health.documents == 1
    assert health.detail == f"Flow at {flow_standin.url}, collection 'my-collection': 1 documents"


def test_health_names_a_missing_collection(flow_standin):
    backend = FlowBackend(standin_settings(flow_standin, collection="photos"), "balanced")

    health = backend.health()

    assert not health.reachable and "no collection 'photos'" in health.detail and "backend.flow.collection" in health.detail


def test_health_of_a_slow_flow(flow_standin):
    backend = backend_for(flow_standin, read_timeout=0.2)
    flow_standin.slow(1.0, endpoint="health", count=1)

    health = backend.health()

    assert not health.reachable and "did not answer in time" in health.detail


def test_health_of_a_flow_answering_500(flow_standin, flow_backend):
    flow_standin.fail_next(None, status=500)

    health = flow_backend.health()

    assert not health.reachable and "HTTP 500" in health.detail
    assert flow_standin.counts["health"] == 1  # health never retries


def test_health_of_an_unknown_host():
    settings = FlowSettings(url="http://flow.invalid:8983", connect_timeout=0.5, read_timeout=1, retries=0)

    health = FlowBackend(settings, "balanced").health()

    assert not health.reachable and "is not reachable" in health.detail
