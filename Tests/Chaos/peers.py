#!/usr/bin/env python3
"""The MX hosts of the chaos suite (scripts/chaos): recording SMTP sinks and a tarpit, in one asyncio process.

  peers.py --port P --record FILE --sink 127.42.0.11 --sink 127.42.0.12 … [--tarpit 127.42.0.20 …]

Every sink address runs an aiosmtpd server on port P that accepts every message and, before it answers 250 to
the end of data, appends one line to FILE:

  <unix time> <X-Chaos-Id header value, or "-"> <sink address>

so the driver counts each message's copies precisely (duplicates) and when they arrived. A tarpit address
accepts TCP connections on port P and never says anything (no greeting, reads and discards whatever comes);
each accepted connection appends "<unix time> TARPIT <address>". Prints READY once every address listens.
Exits on SIGTERM/SIGINT, or when its parent dies (PR_SET_PDEATHSIG).
"""
import argparse
import asyncio
import ctypes
import re
import signal
import time

from aiosmtpd.smtp import SMTP

CHAOS_ID = re.compile(rb"\r\nX-Chaos-Id:[ \t]*([^\r\n]+)", re.IGNORECASE)


class Recorder:
    def __init__(self, path):
        self.file = open(path, "a", buffering=1)

    def write(self, what, address):
        self.file.write("%.3f %s %s\n" % (time.time(), what, address))


class SinkHandler:
    def __init__(self, recorder, address):
        self.recorder = recorder
        self.address = address

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        match = CHAOS_ID.search(b"\r\n" + data.split(b"\r\n\r\n", 1)[0])
        self.recorder.write(match.group(1).decode(errors="replace").strip() if match else "-", self.address)
        return "250 2.0.0 Ok: queued"


class Tarpit(asyncio.Protocol):
    """Accepts, records the connection, and never answers."""

    def __init__(self, recorder, address):
        self.recorder = recorder
        self.address = address

    def connection_made(self, transport):
        self.recorder.write("TARPIT", self.address)

    def data_received(self, data):
        pass


async def serve(args):
    recorder = Recorder(args.record)
    loop = asyncio.get_running_loop()
    servers = []
    for address in args.sink:
        handler = SinkHandler(recorder, address)
        servers.append(await loop.create_server(
            lambda handler=handler: SMTP(handler, decode_data=False, hostname="sink.chaos.test",
                                         data_size_limit=64 * 1024 * 1024, enable_SMTPUTF8=True),
            host=address, port=args.port, backlog=1024, reuse_address=True))
    for address in args.tarpit:
        servers.append(await loop.create_server(lambda address=address: Tarpit(recorder, address),
                                                host=address, port=args.port, backlog=1024, reuse_address=True))
    print("READY", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--sink", action="append", default=[])
    parser.add_argument("--tarpit", action="append", default=[])
    args = parser.parse_args()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
