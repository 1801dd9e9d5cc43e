#!/usr/bin/env python3
"""A recording SMTP sink for Relay's end-to-end tests (aiosmtpd).

Every accepted message is appended to --record as one JSON line:
  {"mail_from": "...", "rcpt_tos": [...], "data_b64": "...", "peer": "ip", "peer_port": 12345,
   "received_at": 1764400000.123, "open_connections": 2, "tls": true, "auth_user": "name or null"}
(data_b64 is the message exactly as received after un-dot-stuffing, CRLF line ends intact; received_at is
when the end of data arrived, in seconds since 1970; open_connections is how many client connections were open
then, this one included; auth_user is who authenticated the session).

As a smarthost (--auth-user/--auth-password) it requires AUTH (PLAIN and LOGIN, or --auth-mechanisms) before
MAIL, offered only under TLS unless --auth-plaintext; every AUTH command received is appended to
<record>.auth as {"mechanism": "PLAIN", "tls": false}, so a test can prove none came without TLS.
--implicit-tls serves TLS from the first byte (port 465 style) instead of offering STARTTLS.

Behaviour is chosen by the recipient's local part, so one sink serves many scenarios:
  bounce*      RCPT answered 550 5.1.1 (user unknown)
  defer*       RCPT answered 451 4.3.0 the first time this address is seen, accepted afterwards
  tempfail*    RCPT always answered 451 4.3.0
  datafail*    end of data answered 554 5.6.0 (when all recipients are datafail*)
  slow*        end of data answered after --slow-seconds (default 2)
  vanish*      the first time an address is seen at the end of data, the message is recorded (it arrived) and
               the connection is closed without a reply: the sender cannot know; accepted afterwards
  anything else: accepted
--greeting CODE makes the server answer the connection with CODE (e.g. 421) and close.
--connection-limit N answers a connection beyond N open ones with "421 4.7.0 Too many concurrent connections"
and closes it, like a provider that throttles; --connection-log FILE appends "open N" / "refused N" lines.
Prints "READY" on stdout once listening.
"""
import argparse
import asyncio
import ctypes
import signal
import threading
import base64
import json
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def is_tls(server):
    """Whether the session is encrypted: after STARTTLS, or implicit TLS from the first byte."""
    return server.transport is not None and server.transport.get_extra_info("ssl_object") is not None


class Handler:
    def __init__(self, record, slow_seconds):
        self.record = record
        self.slow_seconds = slow_seconds
        self.seen = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local.startswith("bounce"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if local.startswith("tempfail"):
            return "451 4.3.0 <%s>: Temporary failure, try again" % address
        if local.startswith("defer") and address not in self.seen:
            self.seen.add(address)
            return "451 4.3.0 <%s>: Greylisted, try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        received_at = time.time()
        locals_ = [r.split("@", 1)[0].lower() for r in envelope.rcpt_tos]
        if locals_ and all(l.startswith("datafail") for l in locals_):
            return "554 5.6.0 Message content rejected"
        if any(l.startswith("slow") for l in locals_):
            await asyncio.sleep(self.slow_seconds)
        line = json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data_b64": base64.b64encode(envelope.original_content or envelope.content).decode(),
            "peer": session.peer[0] if session.peer else None,
            "peer_port": session.peer[1] if session.peer else None,
            "received_at": received_at,
            "open_connections": GreetingSMTP.open_connections,
            "tls": is_tls(server),
            "auth_user": session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None,
        })
        with open(self.record, "a") as f:
            f.write(line + "\n")
            f.flush()
        vanishing = [r for r in envelope.rcpt_tos if r.split("@", 1)[0].lower().startswith("vanish")
                     and ("vanish", r) not in self.seen]
        if vanishing:
            self.seen.update(("vanish", r) for r in vanishing)
            server.transport.close()
        return "250 2.0.0 Ok: queued"


class GreetingSMTP(SMTP):
    greeting_code = None
    connection_limit = None
    connection_log = None
    open_connections = 0

    def connection_made(self, transport):
        GreetingSMTP.open_connections += 1
        self.counted = True
        super().connection_made(transport)

    def connection_lost(self, exc):
        if getattr(self, "counted", False):
            self.counted = False
            GreetingSMTP.open_connections -= 1
        super().connection_lost(exc)

    def log_connection(self, what):
        if self.connection_log:
            with open(self.connection_log, "a") as f:
                f.write("%s %d\n" % (what, GreetingSMTP.open_connections))

    # Not auth_*: aiosmtpd takes every auth_<name> attribute for a SASL mechanism.
    attempt_log = None

    async def smtp_AUTH(self, arg):
        if self.attempt_log:
            with open(self.attempt_log, "a") as f:
                f.write(json.dumps({"mechanism": (arg or "").split(" ")[0].upper(), "tls": is_tls(self)}) + "\n")
        await super().smtp_AUTH(arg)

    async def _handle_client(self):
        if self.greeting_code:
            await self.push("%s 4.3.2 Service not available, closing channel" % self.greeting_code)
            self.transport.close()
            return
        if self.connection_limit is not None and GreetingSMTP.open_connections > self.connection_limit:
            self.log_connection("refused")
            await self.push("421 4.7.0 Too many concurrent connections from your IP, slow down")
            self.transport.close()
            return
        self.log_connection("open")
        await super()._handle_client()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", required=True)
    parser.add_argument("--greeting", default=None)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--connection-limit", type=int, default=None)
    parser.add_argument("--connection-log", default=None)
    parser.add_argument("--tls-cert", default=None, help="PEM certificate: offer STARTTLS")
    parser.add_argument("--tls-key", default=None)
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte instead of STARTTLS")
    parser.add_argument("--auth-user", default=None, help="require AUTH with this user name")
    parser.add_argument("--auth-password", default=None)
    parser.add_argument("--auth-mechanisms", default="PLAIN,LOGIN", help="comma-separated subset of PLAIN,LOGIN")
    parser.add_argument("--auth-plaintext", action="store_true", help="offer AUTH without TLS too")
    args = parser.parse_args()

    tls_context = None
    if args.tls_cert:
        import ssl
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.tls_cert, args.tls_key)
    starttls_context = None if args.implicit_tls else tls_context

    auth_options = {}
    if args.auth_user is not None:
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == args.auth_user
                  and auth_data.password.decode() == args.auth_password)
            return AuthResult(success=ok, handled=False, auth_data=auth_data)
        offered = {m.strip().upper() for m in args.auth_mechanisms.split(",")}
        auth_options = dict(
            authenticator=authenticator, auth_required=True,
            # aiosmtpd only knows STARTTLS as TLS: with implicit TLS the session is encrypted already.
            auth_require_tls=not (args.auth_plaintext or args.implicit_tls),
            auth_exclude_mechanism=[m for m in ("PLAIN", "LOGIN") if m not in offered])
        GreetingSMTP.attempt_log = args.record + ".auth"

    handler = Handler(args.record, args.slow_seconds)
    GreetingSMTP.greeting_code = args.greeting
    GreetingSMTP.connection_limit = args.connection_limit
    GreetingSMTP.connection_log = args.connection_log

    class SinkController(Controller):
        def factory(self):
            return GreetingSMTP(self.handler, decode_data=False, enable_SMTPUTF8=True,
                                data_size_limit=64 * 1024 * 1024, hostname="sink.test",
                                tls_context=starttls_context, **auth_options)

    # Die with the test process that started us (Linux prctl PR_SET_PDEATHSIG).
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass
    controller = SinkController(handler, hostname=args.host, port=args.port,
                                ssl_context=tls_context if args.implicit_tls else None)
    controller.start()
    print("READY", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
