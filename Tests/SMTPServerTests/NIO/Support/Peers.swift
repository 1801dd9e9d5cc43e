import Foundation

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
        let outputPath = NSTemporaryDirectory() + "relay-smtp-peer-\(UUID().uuidString).log"
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
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
        var environment = ProcessInfo.processInfo.environment
        environment["PYTHONIOENCODING"] = "utf-8"
        var cEnvironment = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in cEnvironment { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, &cArguments, &cEnvironment)
        guard result == 0 else { throw HarnessError("could not start \(executable): \(String(cString: strerror(result)))") }

        let deadline = ContinuousClock.now + timeout
        var status: Int32 = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if ContinuousClock.now >= deadline {
                kill(pid, SIGKILL)
                _ = waitpid(pid, &status, 0)
                let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
                throw HarnessError("\(executable) did not finish within \(timeout); output:\n\(output)")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let code: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        return Outcome(status: code, output: output)
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
