"""Run the stand-in Flow server on its own: ``python -m tests.flow_standin [--port N] [--limit N]``.

Prints its URL on the first line of stdout, then serves until interrupted or its stdin closes
(so a parent process that dies takes it along). For benchmarks and manual tries; never a backend.
"""

from __future__ import annotations

import argparse
import sys

from tests.flow_standin.server import FlowStandIn


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.flow_standin", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--collection", default="my-collection")
    parser.add_argument("--limit", type=int, default=None, help="document limit, as Flow Starter's 5000")
    arguments = parser.parse_args()
    standin = FlowStandIn(collection=arguments.collection, document_limit=arguments.limit)
    standin.port = arguments.port
    standin.start()
    print(standin.url, flush=True)
    try:
        sys.stdin.read()  # returns when stdin closes
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
