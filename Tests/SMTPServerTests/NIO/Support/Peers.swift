import Foundation
import RelayTestSupport

/// Runs real client programs (swaks, python3) for the interop tests.
///
/// Started with posix_spawn, an empty signal mask and default dispositions (the test runner blocks signals that
/// a child would otherwise inherit), killed with SIGKILL when it outlives its timeout, so none outlives a test.
/// A missing program fails the test with what to install; nothing is skipped.
enum Peers {
    struct Outcome {
        var status: Int32
        var output: String
    }

    static func findExecutable(_ name: String, package: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"]
        where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        throw HarnessError("\(name) is not installed: the SMTP server interop tests need it (install \(package))")
    }

    /// Runs `executable` with `arguments`; stdout and stderr together in `output`.
    static func run(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(60)) async throws -> Outcome {
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONIOENCODING"] = "utf-8"
        let (status, output) = try await runToCompletion(executable, arguments, environment: environment, timeout: timeout)
        return Outcome(status: status, output: output)
    }

    /// Runs swaks against 127.0.0.1:port with `arguments`.
    static func swaks(port: Int, _ arguments: [String]) async throws -> Outcome {
        let swaks = try findExecutable("swaks", package: "the Debian package swaks")
        return try await run(swaks, ["--server", "127.0.0.1:\(port)", "--timeout", "30"] + arguments)
    }

    /// Runs a Python script (given as source) with `arguments`.
    static func python(_ source: String, _ arguments: [String]) async throws -> Outcome {
        let python = try findExecutable("python3", package: "python3")
        let path = NSTemporaryDirectory() + "relay-smtp-peer-\(UUID().uuidString).py"
        try source.write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        return try await run(python, [path] + arguments)
    }
}
