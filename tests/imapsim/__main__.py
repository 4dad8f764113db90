"""``python -m tests.imapsim --port 0 --control-port 0``: run the simulator as its own process.

Prints one JSON line ``{"imap_port": p, "control_port": c, "pid": n}`` once listening, then
serves until SIGTERM/SIGINT. With ``--tls-cert`` and ``--tls-key`` it also listens with implicit
TLS (``"imaps_port"`` in that line). The open-files soft limit is raised to the hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import ssl
import sys

from tests.imapsim.control import serve_control
from tests.imapsim.server import ImapSim


async def main(args: argparse.Namespace) -> None:
    sim = await ImapSim(password=args.password).start(args.host, args.port)
    control = await serve_control(sim, args.host, args.control_port)
    ready = {"imap_port": sim.port, "control_port": control.sockets[0].getsockname()[1], "pid": os.getpid()}
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        ready["imaps_port"] = await sim.listen_tls(context, args.host, args.tls_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(json.dumps(ready), flush=True)
    await stop.wait()
    control.close()
    await sim.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--tls-cert", default=None, help="PEM certificate: also listen with implicit TLS")
    parser.add_argument("--tls-key", default=None, help="its PEM key")
    parser.add_argument("--password", default=None, help="the one password accepted (default: any)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
