"""Finding and ending the processes the service started."""

import os
import subprocess
import sys

import pytest

from dupe_scanner.service.processes import descendants, kill_all
from tests.service_helpers import wait_for

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")


def test_descendants_are_found_and_ended():
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"])
    try:
        found = wait_for(lambda: descendants(parent.pid) if len(descendants(parent.pid)) == 2 else None, what="two children")
        kill_all(found)
        wait_for(lambda: not descendants(parent.pid), what="the children to end")
        parent.wait(10)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_grandchildren_too():
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    parent = subprocess.Popen(["sh", "-c", f"{sys.executable} -c \"{script}\" & wait"])
    try:
        found = wait_for(lambda: descendants(parent.pid) if len(descendants(parent.pid)) == 2 else None, what="a grandchild")
        kill_all(found)
        kill_all(found)  # already gone: no error
    finally:
        parent.kill()
        parent.wait()
