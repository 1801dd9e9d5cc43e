import Foundation
import RelayCore
import Synchronization
import NIOCore
import NIOPosix

/// A port free for both TCP and UDP on `host`, chosen at random below the kernel's ephemeral range
/// (32768–60999 on Linux). Ports handed out by `bind(0)` come from that range, so a port picked here cannot be
/// taken in the meantime by a test server bound to port 0 or by an outgoing connection; collisions between
/// two tests' random picks are caught by the bind check.
public func freePort(host: String = "127.0.0.1") throws -> Int {
    for _ in 0..<200 {
        let port = Int.random(in: 20_000..<32_000)
        if canBind(host: host, port: port, type: Int32(SOCK_STREAM.rawValue))
            && canBind(host: host, port: port, type: Int32(SOCK_DGRAM.rawValue)) {
            return port
        }
    }
    throw TestSupportError("no free port found on \(host)")
}

private func canBind(host: String, port: Int, type: Int32) -> Bool {
    let fd = socket(AF_INET, type, 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &address.sin_addr)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// Whether something accepts TCP connections at host:port.
public func isListening(host: String, port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    inet_pton(AF_INET, host, &address.sin_addr)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    } == 0
}

/// A child process started by a test, stopped (SIGTERM, then SIGKILL) by `stop()`.
///
/// Spawned with posix_spawn and an empty signal mask: the test runner blocks some signals, and a child
/// started by Foundation's `Process` inherits that mask (SIGTERM would then never arrive).
public final class ChildProcess: Sendable {
    /// The child's process id.
    public let pid: pid_t
    private let exitStatus = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments` and `environment` (nil: inherit); output is appended to `logPath`
    /// (or discarded); standard input is /dev/null.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, logPath: String? = nil) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath ?? "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of this process: NIO's sockets are not close-on-exec, and a peer that inherited one kept it
        // open — a connection the tests had closed stayed open (no FIN) for as long as the peer ran, and a peer
        // left running after a killed run held a PostgreSQL session (and its advisory lock) for good.
        SpawnActions.closeInheritedDescriptors(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = [executable] + arguments
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for pointer in cArguments { free(pointer) } }
        let environmentList = (environment ?? ProcessInfo.processInfo.environment).map { "\($0.key)=\($0.value)" }
        var cEnvironment = environmentList.map { strdup($0) } + [nil]
        defer { for pointer in cEnvironment { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, &cArguments, &cEnvironment)
        guard result == 0 else { throw TestSupportError("could not start \(executable): \(String(cString: strerror(result)))") }
        self.pid = pid
    }

    /// Sends a signal.
    public func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// Whether the process has not exited yet.
    public var isRunning: Bool {
        reap(blocking: false) == nil
    }

    private func reap(blocking: Bool) -> Int32? {
        exitStatus.withLock { known in
            if let known { return known }
            var status: Int32 = 0
            let result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            guard result == pid else { return nil }
            let code: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
            known = code
            return code
        }
    }

    /// Waits for the process to exit; returns its exit status (128+signal when killed) or nil on timeout.
    public func waitForExit(timeout: Duration = .seconds(30)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let code = reap(blocking: false) { return code }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    /// Stops the process: SIGTERM, then SIGKILL if it lingers.
    public func stop() async {
        if !isRunning { return }
        signal(SIGTERM)
        if await waitForExit(timeout: .seconds(5)) == nil {
            signal(SIGKILL)
            _ = await waitForExit(timeout: .seconds(5))
        }
    }
}

/// The recording aiosmtpd sink of Tests/Peers/smtp_sink.py (behaviour chosen by recipient local part).
public final class RecordingSMTPSink: Sendable {
    /// What one received message looked like.
    public struct Received: Sendable {
        public var mailFrom: String
        public var recipients: [String]
        public var data: [UInt8]
        /// The client's source port: equal for messages that came over one connection.
        public var peerPort: Int?
        /// When the sink received the end of the data.
        public var receivedAt: Date?
        /// Client connections open at the end of the data, this one included.
        public var openConnections: Int?
        /// Whether the session was encrypted (STARTTLS or implicit TLS).
        public var tls: Bool
        /// The user name the session authenticated with (nil: no AUTH).
        public var authUser: String?
    }

    /// One AUTH command the sink received, before it judged the credentials.
    public struct AuthAttempt: Sendable, Equatable {
        public var mechanism: String
        /// Whether the session was encrypted when the command arrived.
        public var tls: Bool

        public init(mechanism: String, tls: Bool) {
            self.mechanism = mechanism
            self.tls = tls
        }
    }

    /// The sink as a smarthost: AUTH required before MAIL, with these credentials.
    public struct Authentication: Sendable {
        public var username: String
        public var password: String
        /// The SASL mechanisms offered (a subset of PLAIN and LOGIN).
        public var mechanisms: [String]
        /// Offer AUTH without TLS too (a server that would take credentials in plaintext).
        public var plaintext: Bool

        public init(username: String, password: String, mechanisms: [String] = ["PLAIN", "LOGIN"], plaintext: Bool = false) {
            self.username = username
            self.password = password
            self.mechanisms = mechanisms
            self.plaintext = plaintext
        }
    }

    public let host: String
    public let port: Int
    public let recordPath: String
    private let child: ChildProcess

    /// Starts a sink on host:port (port 0 picks a free one) and waits until it accepts connections. With a PEM
    /// certificate and key it offers STARTTLS (with `implicitTLS`, TLS from the first byte instead); with
    /// `authentication` it requires AUTH. With a connection limit it answers connections beyond it with
    /// `421 4.7.0 Too many concurrent connections` (see `connectionLog()`).
    public static func start(host: String = "127.0.0.1", port: Int = 0, greeting: String? = nil,
                             slowSeconds: Double? = nil, tls: (certificate: String, key: String)? = nil,
                             implicitTLS: Bool = false, authentication: Authentication? = nil,
                             connectionLimit: Int? = nil) async throws -> RecordingSMTPSink {
        try await startOnFreePort(host: host, port: port) { port in
            try await startSink(host: host, port: port, greeting: greeting, slowSeconds: slowSeconds, tls: tls,
                                implicitTLS: implicitTLS, authentication: authentication, connectionLimit: connectionLimit)
        }
    }

    private static func startSink(host: String, port: Int, greeting: String?, slowSeconds: Double?,
                                  tls: (certificate: String, key: String)?, implicitTLS: Bool, authentication: Authentication?,
                                  connectionLimit: Int?) async throws -> RecordingSMTPSink {
        let record = NSTemporaryDirectory() + "relay-sink-\(UUID().uuidString).jsonl"
        FileManager.default.createFile(atPath: record, contents: nil)
        var arguments = [try peerScript("smtp_sink.py"), "--host", host, "--port", "\(port)", "--record", record]
        if let greeting { arguments += ["--greeting", greeting] }
        if let slowSeconds { arguments += ["--slow-seconds", "\(slowSeconds)"] }
        if let tls { arguments += ["--tls-cert", tls.certificate, "--tls-key", tls.key] }
        if let connectionLimit { arguments += ["--connection-limit", "\(connectionLimit)"] }
        arguments += ["--connection-log", record + ".connections"]
        if implicitTLS { arguments.append("--implicit-tls") }
        if let authentication {
            arguments += ["--auth-user", authentication.username, "--auth-password", authentication.password,
                          "--auth-mechanisms", authentication.mechanisms.joined(separator: ",")]
            if authentication.plaintext { arguments.append("--auth-plaintext") }
        }
        let child = try ChildProcess(try findExecutable("python3"), arguments, logPath: record + ".log")
        let sink = RecordingSMTPSink(host: host, port: port, recordPath: record, child: child)
        try await waitUntilListening(child, host: host, port: port, name: "the aiosmtpd sink", package: "aiosmtpd",
                                     logPath: record + ".log")
        return sink
    }

    private init(host: String, port: Int, recordPath: String, child: ChildProcess) {
        self.host = host
        self.port = port
        self.recordPath = recordPath
        self.child = child
    }

    /// Messages received so far.
    public func received() throws -> [Received] {
        return try completeLines(ofFile: recordPath).map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let data = Data(base64Encoded: object["data_b64"] as? String ?? "") else {
                throw TestSupportError("unreadable sink record: \(line)")
            }
            return Received(mailFrom: object["mail_from"] as? String ?? "", recipients: object["rcpt_tos"] as? [String] ?? [],
                            data: Array(data), peerPort: object["peer_port"] as? Int,
                            receivedAt: (object["received_at"] as? Double).map(Date.init(timeIntervalSince1970:)),
                            openConnections: object["open_connections"] as? Int,
                            tls: object["tls"] as? Bool ?? false, authUser: object["auth_user"] as? String)
        }
    }

    /// Every connection so far in order: whether it was served (`open`) or refused with 421 (`refused`), and
    /// how many client connections were open at that moment, itself included.
    public func connectionLog() throws -> [(event: String, open: Int)] {
        guard FileManager.default.fileExists(atPath: recordPath + ".connections") else { return [] }
        return try completeLines(ofFile: recordPath + ".connections").compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let open = Int(parts[1]) else { return nil }
            return (String(parts[0]), open)
        }
    }

    /// Every AUTH command received so far (the sink as a smarthost).
    public func authAttempts() throws -> [AuthAttempt] {
        let path = recordPath + ".auth"
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        return try completeLines(ofFile: path).map { line in
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw TestSupportError("unreadable AUTH record: \(line)")
            }
            return AuthAttempt(mechanism: object["mechanism"] as? String ?? "", tls: object["tls"] as? Bool ?? false)
        }
    }

    /// Stops the sink.
    public func stop() async {
        await child.stop()
    }
}

/// The complete lines of a JSON-lines record that a peer may be appending to right now: a last line without its
/// newline is still being written and is left for the next read.
public func completeLines(ofFile path: String) throws -> [Substring] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    let end = text.hasSuffix("\n") ? text.endIndex : (text.lastIndex(of: "\n").map { text.index(after: $0) } ?? text.startIndex)
    return text[..<end].split(separator: "\n")
}

/// Waits until a Python peer has bound host:port — its own "READY" line in its log, printed once bound, so that a
/// port taken meanwhile by another test's peer (which would answer `isListening`) is not mistaken for this one's —
/// and accepts connections there. If it exits first (or never gets there), stops it and throws `PeerExited` with
/// its log, naming the package it probably lacks.
public func waitUntilListening(_ child: ChildProcess, host: String, port: Int, name: String, package: String,
                               logPath: String) async throws {
    do {
        try await waitUntil("\(name) listens on \(host):\(port)", timeout: .seconds(20)) {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            if !child.isRunning {
                throw PeerExited(description: "\(name) on \(host):\(port) exited (is \(package) installed? scripts/test installs it): \(log)")
            }
            return log.split(separator: "\n").contains("READY") && isListening(host: host, port: port)
        }
    } catch {
        await child.stop()
        throw error
    }
}

/// A peer that exited before it was ready (most often: its port was taken by another test's peer in the meantime).
public struct PeerExited: Error, CustomStringConvertible {
    public var description: String
}

/// Starts a peer on a port chosen by `freePort(host:)` when `port` is 0, choosing again (up to 5 times) when the
/// peer exits before it is ready: two tests can pick the same free port at the same moment.
public func startOnFreePort<Peer>(host: String, port: Int, _ start: (Int) async throws -> Peer) async throws -> Peer {
    guard port == 0 else { return try await start(port) }
    var attempt = 0
    while true {
        attempt += 1
        do {
            return try await start(try freePort(host: host))
        } catch is PeerExited where attempt < 5 {
            continue
        }
    }
}

/// Postfix's smtp-sink (from Debian's `postfix` package) on host:port, counting messages.
public final class PostfixSMTPSink: Sendable {
    public let host: String
    public let port: Int
    private let child: ChildProcess

    /// Starts `smtp-sink` (as root it needs `-u nobody`); `-c` prints a running count.
    public static func start(host: String = "127.0.0.1", port: Int = 0, backlog: Int = 256) async throws -> PostfixSMTPSink {
        let port = port == 0 ? try freePort(host: host) : port
        let binary = try findExecutable("smtp-sink", extraDirectories: ["/usr/sbin", "/usr/lib/postfix/sbin"])
        var arguments: [String] = []
        if geteuid() == 0 { arguments += ["-u", "nobody"] }
        arguments += ["\(host):\(port)", "\(backlog)"]
        let child = try ChildProcess(binary, arguments)
        try await waitUntil("smtp-sink listens on \(host):\(port)", timeout: .seconds(10)) {
            isListening(host: host, port: port)
        }
        return PostfixSMTPSink(host: host, port: port, child: child)
    }

    private init(host: String, port: Int, child: ChildProcess) {
        self.host = host
        self.port = port
        self.child = child
    }

    /// Stops the sink.
    public func stop() async {
        await child.stop()
    }
}

/// The path of a peer script in Tests/Peers (found relative to this source file, which the tests build from).
public func peerScript(_ name: String) throws -> String {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let path = root.appendingPathComponent("Tests/Peers/\(name)").path
    guard FileManager.default.fileExists(atPath: path) else { throw TestSupportError("missing peer script \(path)") }
    return path
}

/// The repository root (for finding the built `relay` binary and docs).
public func repositoryRoot() -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

/// Finds a program on PATH (or in extra directories); throws a message naming the package to install.
public func findExecutable(_ name: String, extraDirectories: [String] = []) throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for directory in path.split(separator: ":").map(String.init) + extraDirectories
    where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
        return "\(directory)/\(name)"
    }
    throw TestSupportError("\(name) is not installed: scripts/test installs the test peers (postfix, dnsmasq-base, swaks, aiosmtpd)")
}

/// Runs a program to completion (clean signal mask, output captured); kills it with SIGKILL after `timeout`.
public func runToCompletion(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                            timeout: Duration = .seconds(60)) async throws -> (status: Int32, output: String) {
    let log = NSTemporaryDirectory() + "relay-run-\(UUID().uuidString).log"
    defer { try? FileManager.default.removeItem(atPath: log) }
    let child = try ChildProcess(executable, arguments, environment: environment, logPath: log)
    guard let status = await child.waitForExit(timeout: timeout) else {
        child.signal(SIGKILL)
        _ = await child.waitForExit(timeout: .seconds(5))
        throw TestSupportError("\(executable) did not finish within \(timeout): \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
    }
    return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
}

/// Starts Tests/Peers/tcp_proxy.py forwarding 127.0.0.1:`listenPort` to host:port; stopping it is the
/// target (e.g. PostgreSQL) becoming unreachable.
public func startTCPProxy(listenPort: Int, targetHost: String, targetPort: Int) async throws -> ChildProcess {
    let proxy = try ChildProcess(try findExecutable("python3"), [try peerScript("tcp_proxy.py"), "--listen", "\(listenPort)",
                                                                 "--target", "\(targetHost):\(targetPort)"])
    try await waitUntil("the TCP proxy listens on \(listenPort)") { isListening(host: "127.0.0.1", port: listenPort) }
    return proxy
}

/// A fresh self-signed certificate (P-256, one day) for `hostname` (subject and DNS subjectAltName), made with the
/// openssl command-line tool in a new temporary directory; the certificate file doubles as its own trust root.
public func makeSelfSignedCertificate(hostname: String) async throws -> (certificate: String, key: String) {
    let directory = NSTemporaryDirectory() + "relay-cert-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let certificate = directory + "/cert.pem"
    let key = directory + "/key.pem"
    let (status, output) = try await runToCompletion(try findExecutable("openssl"), [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=\(hostname)",
        "-addext", "subjectAltName=DNS:\(hostname)",
    ])
    guard status == 0 else { throw TestSupportError("openssl could not make a self-signed certificate: \(output)") }
    return (certificate, key)
}
