import Foundation
import RelayTestSupport
import NIOCore
import NIOPosix
import Testing

/// Real SMTP servers on loopback for the connection tests: Postfix's smtp-sink and a small aiosmtpd server.
/// A missing program fails the test with a message saying what to install; nothing is skipped.
enum TestPeers {
    struct MissingPeer: Error, CustomStringConvertible {
        var description: String
    }

    /// A running peer; `stop()` ends it.
    final class Peer: Sendable {
        let port: Int
        let directory: URL
        private let child: ChildProcess

        init(port: Int, directory: URL, child: ChildProcess) {
            self.port = port
            self.directory = directory
            self.child = child
        }

        var address: SocketAddress {
            get throws { try SocketAddress(ipAddress: "127.0.0.1", port: port) }
        }

        /// Kills the peer (it is reaped when the test process ends) and removes its directory; synchronous, so that
        /// it can run in a `defer`, and never blocks a concurrency thread waiting for the exit.
        func stop() {
            child.signal(SIGKILL)
            try? FileManager.default.removeItem(at: directory)
        }

        /// The files the peer wrote into its directory with the given extension, sorted by name.
        func files(withExtension ext: String) throws -> [URL] {
            try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
                .filter { $0.pathExtension == ext }
                .sorted { $0.lastPathComponent < $1.lastPathComponent }
        }
    }

    /// The aiosmtpd server. Addresses select behaviour: a MAIL FROM starting with "tempfail" gets 451,
    /// a RCPT TO starting with "unknown" gets 550 5.1.1, content containing "REJECT-ME" gets 554 5.6.0 after
    /// the final dot. Each accepted message is written as N.eml (content exactly as received, after
    /// dot-unstuffing) and N.json (envelope, MAIL parameters, whether TLS was on).
    static let aiosmtpdScript = #"""
    import argparse, asyncio, json, os, ssl, sys
    from aiosmtpd.smtp import SMTP

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--pipelining", action="store_true")
    parser.add_argument("--silent", action="store_true")
    args = parser.parse_args()

    class Handler:
        def __init__(self):
            self.count = 0

        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if args.pipelining:
                responses.insert(1, "250-PIPELINING")
            return responses

        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            if address.startswith("tempfail"):
                return "451 4.3.0 Try again later"
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            return "250 2.1.0 OK"

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address.startswith("unknown"):
                return "550 5.1.1 No such user here"
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"

        async def handle_DATA(self, server, session, envelope):
            content = envelope.original_content
            if b"REJECT-ME" in content:
                return "554 5.6.0 Content rejected"
            self.count += 1
            base = os.path.join(args.dir, "%04d" % self.count)
            with open(base + ".eml", "wb") as f:
                f.write(content)
            with open(base + ".json", "w") as f:
                json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                           "mail_options": envelope.mail_options, "tls": session.ssl is not None}, f)
            return "250 2.0.0 Queued as %d" % self.count

    async def silent(reader, writer):
        # Accept and never answer: a server that hangs before its banner.
        await reader.read()

    async def exit_with_parent():
        # Do not outlive the test process if it dies without stopping us.
        parent = os.getppid()
        while os.getppid() == parent:
            await asyncio.sleep(0.5)
        os._exit(0)

    async def main():
        loop = asyncio.get_running_loop()
        asyncio.ensure_future(exit_with_parent())
        if args.silent:
            server = await asyncio.start_server(silent, "127.0.0.1", args.port)
        else:
            context = None
            if args.cert:
                context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                context.load_cert_chain(args.cert, args.key)
            handler = Handler()
            server = await loop.create_server(
                lambda: SMTP(handler, hostname="peer.test", tls_context=context, require_starttls=False,
                             enable_SMTPUTF8=True, decode_data=False, data_size_limit=10_000_000),
                "127.0.0.1", args.port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())
    """#

    /// Starts the aiosmtpd server and waits until it accepts connections.
    static func startAiosmtpd(tls: Bool = false, pipelining: Bool = false, silent: Bool = false) async throws -> Peer {
        let python = try findExecutable("python3", hint: "install Python 3")
        let check = try await runToCompletion(python.path, ["-c", "import aiosmtpd"])
        guard check.status == 0 else {
            throw MissingPeer(description: "Python module aiosmtpd is missing: install it with `pip install aiosmtpd`")
        }
        let directory = try makeDirectory()
        let script = directory.appendingPathComponent("peer.py")
        try aiosmtpdScript.write(to: script, atomically: true, encoding: .utf8)
        let port = try await freePort()
        var arguments = [script.path, "--port", String(port), "--dir", directory.path]
        if tls {
            let (cert, key) = try await makeSelfSignedCertificate(hostname: "mx.peer.test")
            arguments += ["--cert", cert, "--key", key]
        }
        if pipelining { arguments.append("--pipelining") }
        if silent { arguments.append("--silent") }
        return try await start(python, arguments, port: port, directory: directory)
    }

    /// Starts Postfix's smtp-sink, dumping each message into the peer's directory. `pipelining: false` passes
    /// `-p` (do not announce PIPELINING).
    static func startSmtpSink(pipelining: Bool) async throws -> Peer {
        let sink = try findExecutable("smtp-sink", hint: "install Postfix (Debian package postfix), which ships smtp-sink")
        let directory = try makeDirectory()
        let port = try await freePort()
        // The dump directory must be writable after smtp-sink drops privileges.
        try FileManager.default.setAttributes([.posixPermissions: 0o777], ofItemAtPath: directory.path)
        var arguments: [String] = []
        if getuid() == 0 { arguments += ["-u", "nobody"] }
        if !pipelining { arguments.append("-p") }
        arguments += ["-d", directory.path + "/%Y%m%d%H%M%S.", "127.0.0.1:\(port)", "100"]
        return try await start(sink, arguments, port: port, directory: directory)
    }

    // MARK: - Plumbing

    private static func start(_ executable: URL, _ arguments: [String], port: Int, directory: URL) async throws -> Peer {
        let log = directory.appendingPathComponent("peer.log")
        let child = try ChildProcess(executable.path, arguments, logPath: log.path)
        let peer = Peer(port: port, directory: directory, child: child)
        do {
            try await waitUntilAccepting(port: port, child: child, name: executable.lastPathComponent, log: log)
        } catch {
            peer.stop()
            throw error
        }
        return peer
    }

    /// Polls a TCP connect to the port until it succeeds (or the process exits, or 20 s pass).
    private static func waitUntilAccepting(port: Int, child: ChildProcess, name: String, log: URL) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connectTimeout(.milliseconds(500))
        while ContinuousClock.now < deadline {
            guard child.isRunning else {
                let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw MissingPeer(description: "\(name) exited: \(output)")
            }
            if let channel = try? await bootstrap.connect(host: "127.0.0.1", port: port).get() {
                try? await channel.close()
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw MissingPeer(description: "peer did not accept connections on port \(port) within 20 s")
    }

    /// A port that nothing listens on right now.
    /// A free port outside the ephemeral range (see RelayTestSupport.freePort).
    static func freePort() async throws -> Int {
        try RelayTestSupport.freePort()
    }

    static func findExecutable(_ name: String, hint: String) throws -> URL {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/usr/local/sbin", "/sbin"]
        for directory in directories {
            let candidate = URL(fileURLWithPath: directory).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw MissingPeer(description: "\(name) not found on PATH: \(hint)")
    }

    private static func makeDirectory() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("smtp-peer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }
}
