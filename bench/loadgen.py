#!/usr/bin/env python3
"""Open-loop HTTP/1.1 load generator: constant arrival rate, no coordinated omission (wrk2-style). Stdlib only.

    from loadgen import constant_rate
    r = constant_rate(host="127.0.0.1", port=8080, path="/v1/messages", body=b'{...}',
                      headers={"Authorization": "Bearer xyz", "Content-Type": "application/json"},
                      rate=500, seconds=10, connections=64, timeout=10.0)

Request i is due at t0 + i/rate whatever the server does. Each due request takes a free connection from a pool of
`connections` persistent keep-alive connections, or queues until one is free. Latency runs from the request's
intended time, not from when it was written, so time spent queued behind a slow server is counted (a closed-loop
generator would silently stop sending instead and report only the fast requests).

Result keys:
    scheduled       requests due in the run (int(rate * seconds)); scheduled == completed + errors
    sent            requests actually written to a socket
    completed       2xx responses, read in full
    errors          non-2xx responses, socket errors, timeouts, and requests still unsent when the drain ended
    timeouts        the part of errors that were timeouts or never sent
    status_counts   {status: count} over every response received (2xx and not)
    achieved_rate   completed / seconds
    latencies_ms    one per completed request, from its intended time to the end of its response
    p50_ms, p99_ms, max_ms   over latencies_ms (nearest rank); None when nothing completed
    late            requests written more than 5 ms after their intended time (or never written)
    max_send_lag_ms worst delay between a request's intended time and its write
    behind_schedule late > 1% of scheduled: the generator could not keep to the schedule, because every connection
                    was busy (too few connections for the server's latency) or the event loop lagged; the latencies
                    are still honest, but the offered rate was not the one asked for

    python3 bench/loadgen.py --self-test   measures this generator against a trivial local server in a subprocess

Loopback only. Parses status line, headers, Content-Length, chunked and read-until-close bodies; no pipelining,
no TLS, no retries (a POST retried could be delivered twice).
"""
import argparse
import asyncio
import collections
import ipaddress
import math
import multiprocessing
import socket
import sys
import time

LATE_S = 0.005          # a write this long after its intended time counts as late
LATE_FRACTION = 0.01    # more than this fraction late means behind_schedule
WATCHDOG_S = 0.05       # how often per-request timeouts are checked (one timer, not one per request)
MAX_HEADER = 64 * 1024  # a response header larger than this is treated as a protocol error


class _ProtocolError(Exception):
    pass


class _Conn(asyncio.Protocol):
    """One keep-alive client connection with at most one request in flight; parses the response incrementally.

    A Protocol rather than asyncio streams: one callback per read and no awaits inside the parser, which is what
    makes several thousand requests/s possible on one core.
    """

    def __init__(self, loop):
        self.loop = loop
        self.transport = None
        self.closed = False
        self.fut = None         # resolves to the status code of the response in flight
        self.deadline = 0.0     # loop time after which the watchdog fails the request in flight
        self.buf = bytearray()
        self.must_close = False  # the server said Connection: close (or HTTP/1.0 without keep-alive)
        self._reset()

    def _reset(self):
        self.status = None      # None until the response header has been parsed
        self.mode = None        # "length", "chunked", "close"
        self.remaining = 0      # body bytes still to come ("length") or bytes of chunk data + CRLF ("chunked")
        self.chunk_state = "size"

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Small request/response exchanges: Nagle would add up to 40 ms of delayed-ACK latency.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc):
        self.closed = True
        fut = self.fut
        if fut is not None and not fut.done():
            self.fut = None
            if self.mode == "close":
                fut.set_result(self.status)  # body delimited by the close: that is a complete response
            else:
                fut.set_exception(ConnectionError("connection closed mid-response" if self.status
                                                  else "connection closed before response"))

    def send(self, data, deadline):
        self._reset()
        self.fut = self.loop.create_future()
        self.deadline = deadline
        self.transport.write(data)
        return self.fut

    def fail(self, exc):
        """Fail the request in flight and drop the connection (its state is unknown afterwards)."""
        fut = self.fut
        self.fut = None
        if fut is not None and not fut.done():
            fut.set_exception(exc)
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data):
        self.buf += data
        if self.fut is None:
            return  # unsolicited bytes; kept, and the next response parse will trip over them
        try:
            self._parse()
        except (_ProtocolError, ValueError, IndexError) as e:
            self.fail(_ProtocolError("bad response: %s" % e))

    def _parse(self):
        buf = self.buf
        while True:
            if self.status is None:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEADER:
                        raise _ProtocolError("header too large")
                    return
                self._parse_header(bytes(buf[:end]))
                del buf[:end + 4]
                if self.status is None:
                    continue  # it was a 1xx interim response; the real one follows
            if self.mode == "length":
                if len(buf) < self.remaining:
                    return
                del buf[:self.remaining]
                return self._finish()
            if self.mode == "chunked":
                if self._parse_chunks():
                    return self._finish()
                return
            # "close": the body runs until the server closes; discard it as it comes.
            buf.clear()
            return

    def _parse_header(self, head):
        lines = head.split(b"\r\n")
        version, status = lines[0].split(None, 2)[:2]
        status = int(status)
        clen = None
        chunked = False
        close = version == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                clen = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                value = value.lower()
                if b"close" in value:
                    close = True
                elif b"keep-alive" in value:
                    close = False
        if 100 <= status < 200:
            return  # interim (e.g. 100 Continue): leave self.status None
        self.status = status
        self.must_close = close
        if status in (204, 304):
            self.mode, self.remaining = "length", 0
        elif chunked:
            self.mode, self.chunk_state = "chunked", "size"
        elif clen is not None:
            self.mode, self.remaining = "length", clen
        else:
            self.mode, self.must_close = "close", True

    def _parse_chunks(self):
        """Consume as much chunked body as the buffer holds; True once the last chunk and trailers are in."""
        buf = self.buf
        while True:
            if self.chunk_state == "data":
                if len(buf) < self.remaining:
                    return False
                del buf[:self.remaining]
                self.chunk_state = "size"
            eol = buf.find(b"\r\n")
            if eol < 0:
                return False
            line = bytes(buf[:eol])
            del buf[:eol + 2]
            if self.chunk_state == "size":
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    self.chunk_state = "trailer"
                else:
                    self.chunk_state, self.remaining = "data", size + 2  # data and its CRLF
            elif not line:  # "trailer": an empty line ends the message
                return True

    def _finish(self):
        fut = self.fut
        self.fut = None
        if fut is not None and not fut.done():
            fut.set_result(self.status)


def _check_loopback(host):
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError("loadgen is loopback only; got host %r" % host)


def _build_request(host, port, path, body, headers, method):
    """The request bytes, built once: every request of a run is identical."""
    names = {k.lower() for k in headers}
    lines = ["%s %s HTTP/1.1" % (method, path)]
    if "host" not in names:
        lines.append("Host: %s:%d" % ("[%s]" % host if ":" in host else host, port))
    for k, v in headers.items():
        lines.append("%s: %s" % (k, v))
    if "content-length" not in names and (body or method not in ("GET", "HEAD")):
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list; None if empty."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


async def constant_rate_async(host="127.0.0.1", port=8080, path="/", body=b"", headers=None, rate=100.0,
                              seconds=10.0, connections=64, timeout=10.0, method=None):
    """constant_rate() for callers already inside an event loop."""
    _check_loopback(host)
    if rate <= 0 or seconds <= 0 or connections < 1:
        raise ValueError("rate, seconds and connections must be positive")
    headers = dict(headers or {})
    method = method or ("POST" if body else "GET")
    if method == "HEAD":
        raise ValueError("HEAD is not supported (its responses carry a Content-Length but no body)")
    request = _build_request(host, port, path, body, headers, method)
    loop = asyncio.get_running_loop()
    now = loop.time

    total = int(rate * seconds)
    backlog = collections.deque()   # intended times of due requests waiting for a free connection
    idle = collections.deque()      # futures of workers waiting for a due request
    conns = set()                   # open connections, for the watchdog and the final abort
    latencies = []
    status_counts = collections.Counter()
    stats = {"sent": 0, "completed": 0, "errors": 0, "timeouts": 0, "late": 0, "max_lag": 0.0}
    done_scheduling = False

    async def connect():
        _, conn = await loop.create_connection(lambda: _Conn(loop), host, port)
        conns.add(conn)
        return conn

    async def worker(conn):
        while True:
            if backlog:
                intended = backlog.popleft()
            elif done_scheduling:
                return
            else:
                f = loop.create_future()
                idle.append(f)
                intended = await f
                if intended is None:
                    return
            if conn is None or conn.closed:
                conns.discard(conn)
                try:
                    conn = await asyncio.wait_for(connect(), timeout)  # counted in latency: it is after intended
                except (OSError, asyncio.TimeoutError):
                    conn = None
                    stats["errors"] += 1
                    stats["late"] += 1  # never written
                    continue
            t = now()
            lag = t - intended
            if lag > LATE_S:
                stats["late"] += 1
            if lag > stats["max_lag"]:
                stats["max_lag"] = lag
            stats["sent"] += 1
            try:
                status = await conn.send(request, t + timeout)
            except asyncio.TimeoutError:
                stats["errors"] += 1
                stats["timeouts"] += 1
                conns.discard(conn)
                conn = None
                continue
            except (OSError, _ProtocolError):  # ConnectionError is an OSError
                stats["errors"] += 1
                conn.fail(ConnectionError("dropped"))
                conns.discard(conn)
                conn = None
                continue
            status_counts[status] += 1
            if 200 <= status < 300:
                stats["completed"] += 1
                latencies.append((now() - intended) * 1000.0)
            else:
                stats["errors"] += 1
            if conn.must_close:
                conn.transport.close()
                conns.discard(conn)
                conn = None

    async def watchdog():
        # One periodic check rather than a timer per request: saves a timer push and cancel on every request.
        while True:
            await asyncio.sleep(WATCHDOG_S)
            t = now()
            for conn in list(conns):
                if conn.fut is not None and t > conn.deadline:
                    conn.fail(asyncio.TimeoutError())

    # Open every connection before t0 so connection set-up is not charged to the first requests.
    opened = await asyncio.gather(*(asyncio.wait_for(connect(), timeout) for _ in range(connections)),
                                  return_exceptions=True)
    good = [c for c in opened if isinstance(c, _Conn)]
    if not good:
        raise ConnectionError("could not connect to %s:%d: %r" % (host, port, opened[0]))
    workers = [loop.create_task(worker(c)) for c in good]
    workers += [loop.create_task(worker(None)) for _ in range(connections - len(good))]  # retry lazily
    dog = loop.create_task(watchdog())
    await asyncio.sleep(0)  # let every worker park in `idle`

    cpu0 = time.process_time()
    t0 = now() + 0.01
    interval = 1.0 / rate
    i = 0
    while i < total:
        # Release every request whose time has come (several at once if the loop woke late), then sleep until
        # the next one. Times are computed from t0, never accumulated, so lateness cannot drift the schedule.
        due = min(total, math.floor((now() - t0) * rate) + 1)  # floor, not int: never release one early
        while i < due:
            intended = t0 + i * interval
            while idle:
                f = idle.popleft()
                if not f.done():
                    f.set_result(intended)
                    break
            else:
                backlog.append(intended)
            i += 1
        if i < total:
            delay = t0 + i * interval - now()
            await asyncio.sleep(delay if delay > 0 else 0)
    end_of_schedule = now()

    done_scheduling = True
    while idle:
        f = idle.popleft()
        if not f.done():
            f.set_result(None)
    # Drain: give requests in flight or queued up to `timeout` more; whatever is left then counts as an error.
    _, pending = await asyncio.wait(workers, timeout=timeout + 2 * WATCHDOG_S)
    if pending:
        unsent = len(backlog)
        backlog.clear()
        stats["errors"] += unsent
        stats["timeouts"] += unsent
        stats["late"] += unsent
        for conn in list(conns):
            if conn.fut is not None:
                conn.fail(asyncio.TimeoutError())
        _, pending = await asyncio.wait(workers, timeout=1.0)
        for task in pending:
            task.cancel()  # e.g. stuck in a reconnect; its request is counted below
    # Whatever was neither completed nor counted as an error (a cancelled worker's request) is an error too, so that
    # scheduled == completed + errors always holds.
    missing = total - stats["completed"] - stats["errors"]
    if missing > 0:
        stats["errors"] += missing
        stats["timeouts"] += missing
    dog.cancel()
    for conn in list(conns):
        if conn.transport is not None and not conn.closed:
            conn.transport.close()
    await asyncio.sleep(0)
    cpu = time.process_time() - cpu0
    wall = max(now() - t0, 1e-9)

    ordered = sorted(latencies)
    return {
        "scheduled": total,
        "sent": stats["sent"],
        "completed": stats["completed"],
        "errors": stats["errors"],
        "timeouts": stats["timeouts"],
        "status_counts": dict(status_counts),
        "achieved_rate": stats["completed"] / seconds,
        "latencies_ms": latencies,
        "p50_ms": _percentile(ordered, 50),
        "p99_ms": _percentile(ordered, 99),
        "max_ms": ordered[-1] if ordered else None,
        "late": stats["late"],
        "max_send_lag_ms": stats["max_lag"] * 1000.0,
        "behind_schedule": stats["late"] > LATE_FRACTION * total,
        "schedule_s": end_of_schedule - t0,
        "cpu_fraction": cpu / wall,  # of one core, this process: near 1.0 means the generator is the limit
    }


def constant_rate(host="127.0.0.1", port=8080, path="/", body=b"", headers=None, rate=100.0, seconds=10.0,
                  connections=64, timeout=10.0, method=None):
    """Send int(rate * seconds) requests at a constant rate over `connections` keep-alive connections.

    Blocking; runs its own event loop (use constant_rate_async inside one). method defaults to POST when there is
    a body, else GET. See the module docstring for the result's keys.
    """
    return asyncio.run(constant_rate_async(host, port, path, body, headers, rate, seconds, connections, timeout,
                                           method))


# --- self-test ---------------------------------------------------------------------------------------------------

_REPLY = b'{"id":"00000000-0000-0000-0000-000000000000","status":"queued"}'


class _TestServer(asyncio.Protocol):
    """A minimal HTTP/1.1 server: 202 with a small JSON body. /chunked answers chunked; /close closes after."""

    def connection_made(self, transport):
        self.transport = transport
        self.buf = bytearray()
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            clen = 0
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    clen = int(line[15:])
            if len(self.buf) < end + 4 + clen:
                return
            del self.buf[:end + 4 + clen]
            path = head.split(b" ", 2)[1]
            if path == b"/chunked":
                half = len(_REPLY) // 2
                self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                                     b"Transfer-Encoding: chunked\r\n\r\n"
                                     + b"%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n"
                                     % (half, _REPLY[:half], len(_REPLY) - half, _REPLY[half:]))
            elif path == b"/close":
                self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_REPLY), _REPLY))
                self.transport.close()
                return
            else:
                self.transport.write(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                                     b"Content-Length: %d\r\n\r\n%s" % (len(_REPLY), _REPLY))


def _serve(port_pipe):
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_TestServer, "127.0.0.1", 0, backlog=1024)
        port_pipe.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()
    asyncio.run(main())


def self_test(rates=(500, 1000, 2000, 4000), seconds=3.0, connections=64):
    """Run against a trivial server in another process (the other core) and print what this generator sustains."""
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    try:
        port = parent.recv()
        body = b'{"from":"app@example.com","to":["a@example.org"],"subject":"x","text":"' + b"x" * 900 + b'"}'
        headers = {"Authorization": "Bearer test", "Content-Type": "application/json"}
        ok = True
        # Correctness first: chunked bodies and server-closed connections must not produce errors.
        for path in ("/chunked", "/close"):
            r = constant_rate(port=port, path=path, body=body, headers=headers, rate=200, seconds=1.0,
                              connections=8)
            good = r["completed"] == r["scheduled"] and r["errors"] == 0
            ok = ok and good
            print("%-9s %d/%d completed, %d errors, p99 %.2f ms  %s"
                  % (path, r["completed"], r["scheduled"], r["errors"], r["p99_ms"] or -1, "ok" if good else "FAIL"))
        print()
        print("%8s %9s %8s %8s %8s %9s %7s %6s %6s" % ("rate", "achieved", "p50 ms", "p99 ms", "max ms", "lag ms",
                                                     "errors", "cpu", "behind"))
        for rate in rates:
            r = constant_rate(port=port, path="/v1/messages", body=body, headers=headers, rate=rate,
                              seconds=seconds, connections=connections)
            ok = ok and r["errors"] == 0
            print("%8d %9.1f %8.2f %8.2f %8.2f %9.2f %7d %5.0f%% %6s"
                  % (rate, r["achieved_rate"], r["p50_ms"] or -1, r["p99_ms"] or -1, r["max_ms"] or -1,
                     r["max_send_lag_ms"], r["errors"], 100 * r["cpu_fraction"], r["behind_schedule"]))
        return ok
    finally:
        server.terminate()
        server.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--self-test", action="store_true", help="measure against a trivial local server")
    parser.add_argument("--rates", default="500,1000,2000,4000", help="self-test rates, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="self-test seconds per rate")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    if not args.self_test:
        parser.print_help()
        return 2
    rates = [int(x) for x in args.rates.split(",")]
    return 0 if self_test(rates, args.seconds, args.connections) else 1


if __name__ == "__main__":
    sys.exit(main())
