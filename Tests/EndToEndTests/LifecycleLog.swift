import Foundation
import Logging
import Synchronization

/// The service-lifecycle events of one in-process Relay (which service was told to shut down, which finished),
/// kept so that a graceful shutdown that never ends names the service it is waiting for. Everything else goes
/// to standard error at `RELAY_TEST_LOG_LEVEL` (default: critical only), as before.
final class LifecycleLog: Sendable {
    private let events = Mutex<[String]>([])
    private let outputLevel: Logger.Level

    init() {
        outputLevel = ProcessInfo.processInfo.environment["RELAY_TEST_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    }

    /// A logger whose handler records lifecycle events (ServiceGroup's `sl-service` debug messages) and prints
    /// the rest at the configured level.
    func logger(label: String) -> Logger {
        var logger = Logger(label: label) { label in Handler(log: self, label: label) }
        logger.logLevel = .debug
        return logger
    }

    /// The recorded events, oldest first.
    var recorded: [String] { events.withLock { $0 } }

    /// The services told to shut down that have not finished, in the order they were told.
    var unfinishedShutdowns: [String] {
        var pending: [String] = []
        for event in recorded {
            if let name = event.suffix(after: "Triggering graceful shutdown for service: ") {
                pending.append(name)
            } else if let name = event.suffix(after: "Service finished: ") ?? event.suffix(after: "Service finished.: ") {
                pending.removeAll { $0 == name }
            }
        }
        return pending
    }

    fileprivate func record(_ event: String) {
        events.withLock { $0.append(event) }
    }

    fileprivate func shouldPrint(_ level: Logger.Level) -> Bool { level >= outputLevel }

    private struct Handler: LogHandler {
        let log: LifecycleLog
        let label: String
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            if let service = extra?["sl-service"] {
                // A service's description can be long (a struct with its dependencies); its start names it enough.
                log.record("\(message): \(String("\(service)".prefix(160)))")
            } else if message.description.hasPrefix("Graceful shutdown") || message.description.hasPrefix("All services") {
                log.record("\(message)")
            }
            guard log.shouldPrint(level) else { return }
            let merged = metadata.merging(extra ?? [:]) { $1 }
            let details = merged.isEmpty ? "" : " " + merged.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
            FileHandle.standardError.write(Data("\(Date()) \(level) \(label): \(message)\(details)\n".utf8))
        }
    }
}

private extension String {
    func suffix(after prefix: String) -> String? {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : nil
    }
}
