"""sd_notify over a real datagram socket, as systemd would receive it."""

import logging

import pytest

from dupe_scanner.service.notify import Notifier, drop_environment, format_message, socket_address
from tests.service_helpers import NotifySocket, wait_for


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    sock = NotifySocket(tmp_path, abstract=request.param == "abstract")
    yield sock
    sock.close()


def test_messages_arrive_on_the_socket(listener):
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": listener.address}, pid=123)
    assert notifier.enabled
    assert notifier.ready("watching 2 folders")
    assert notifier.status("queue 5, indexed 10")
    assert notifier.watchdog()
    assert notifier.reloading()
    assert notifier.stopping("stopping")
    wait_for(lambda: len(listener.snapshot()) == 5, what="five datagrams")
    ready, status, watchdog, reloading, stopping = listener.snapshot()
    assert ready == {"READY": "1", "STATUS": "watching 2 folders"}
    assert status == {"STATUS": "queue 5, indexed 10"}
    assert watchdog == {"WATCHDOG": "1"}
    assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
    assert stopping == {"STOPPING": "1", "STATUS": "stopping"}
    notifier.close()


def test_without_a_socket_everything_is_a_no_op():
    notifier = Notifier.from_environ({}, pid=1)
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_watchdog_interval_is_half_of_watchdog_usec():
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "120000000"}, pid=42)
    assert notifier.watchdog_interval == 60.0


def test_watchdog_meant_for_another_process_is_ignored():
    environ = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "41"}
    assert Notifier.from_environ(environ, pid=42).watchdog_interval is None
    assert Notifier.from_environ(environ, pid=41).watchdog_interval == 60.0


def test_garbage_watchdog_usec_is_ignored():
    assert Notifier.from_environ({"WATCHDOG_USEC": "soon"}, pid=1).watchdog_interval is None
    assert Notifier.from_environ({"WATCHDOG_USEC": "0"}, pid=1).watchdog_interval is None


def test_a_value_cannot_inject_a_field():
    assert format_message({"STATUS": "line one\nREADY=1"}) == b"STATUS=line one READY=1"
    assert format_message({"READY": "1", "STATUS": None}) == b"READY=1"


def test_long_status_is_cut():
    message = format_message({"STATUS": "x" * 5000}).decode()
    assert len(message) <= len("STATUS=") + 500


def test_abstract_addresses_get_a_nul_byte():
    assert socket_address("@name") == b"\0name"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_a_dead_socket_is_logged_once_and_never_raises(tmp_path, caplog):
    notifier = Notifier(str(tmp_path / "nobody-listens.sock"))
    with caplog.at_level(logging.WARNING, logger="dupe_scanner.service.notify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
    assert len([r for r in caplog.records if "cannot notify" in r.message]) == 1


def test_the_environment_is_dropped_for_children():
    environ = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "2", "HOME": "/root"}
    drop_environment(environ)
    assert environ == {"HOME": "/root"}


def test_notifying_from_many_threads(listener):
    import threading

    notifier = Notifier(listener.address)
    threads = [threading.Thread(target=lambda: [notifier.watchdog() for _ in range(50)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: len(listener.with_key("WATCHDOG")) == 200, what="200 pings")
