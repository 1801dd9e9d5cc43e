import Foundation
import Logging
import Synchronization
import Testing

@testable import RelayApp

/// Collects the lines a `JSONLogHandler` writes.
private final class Capture: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { self.lines.withLock { $0 } }

    func logger(
        label: String = "relay.test",
        level: Logger.Level = .trace,
        provider: Logger.MetadataProvider? = nil
    ) -> Logger {
        var logger = Logger(label: label) { self.handler(label: $0, provider: provider) }
        logger.logLevel = level
        return logger
    }

    func handler(label: String, provider: Logger.MetadataProvider? = nil) -> JSONLogHandler {
        JSONLogHandler(label: label, metadataProvider: provider) { line in self.lines.withLock { $0.append(line) } }
    }

    /// The only line written, parsed; checks it is exactly one newline-terminated line.
    func onlyObject() throws -> [String: Any] {
        let lines = self.all
        try #require(lines.count == 1)
        return try parse(lines[0])
    }
}

private func parse(_ line: String) throws -> [String: Any] {
    #expect(line.hasSuffix("\n"))
    #expect(line.dropLast().contains("\n") == false)
    let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
    return try #require(object as? [String: Any])
}

@Suite struct JSONLogHandlerTests {
    @Test func writesTheFixedFields() throws {
        let capture = Capture()
        capture.logger(label: "relay.queue").notice("delivered")
        let object = try capture.onlyObject()
        #expect(object["level"] as? String == "notice")
        #expect(object["logger"] as? String == "relay.queue")
        #expect(object["msg"] as? String == "delivered")
        let ts = try #require(object["ts"] as? String)
        #expect(ts.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil, "\(ts)")
        #expect(object.count == 4)
    }

    @Test func timestampIsRFC3339UTCWithMillisecondsAndFixedFieldsComeFirst() {
        let date = Date(timeIntervalSince1970: 1_795_919_204.627)
        let line = JSONLogHandler.line(label: "relay", level: .info, message: "m", metadata: ["a": "1"], date: date)
        #expect(line == #"{"ts":"2026-11-29T02:26:44.627Z","level":"info","logger":"relay","msg":"m","a":"1"}"#)
    }

    @Test(arguments: Logger.Level.allCases)
    func levelIsSwiftLogsRawValue(level: Logger.Level) throws {
        let capture = Capture()
        capture.logger().log(level: level, "x")
        #expect(try capture.onlyObject()["level"] as? String == level.rawValue)
    }

    @Test func metadataIsTopLevelAndLaterSourcesWin() throws {
        let capture = Capture()
        let provider = Logger.MetadataProvider { ["from": "provider", "provided": "p", "both": "provider"] }
        var logger = capture.logger(provider: provider)
        logger[metadataKey: "from"] = "handler"
        logger[metadataKey: "handler_only"] = "h"
        logger[metadataKey: "both"] = "handler"
        logger.info("hello", metadata: ["both": "call", "call_only": "c"])
        let object = try capture.onlyObject()
        #expect(object["from"] as? String == "provider")
        #expect(object["both"] as? String == "call")
        #expect(object["handler_only"] as? String == "h")
        #expect(object["provided"] as? String == "p")
        #expect(object["call_only"] as? String == "c")
    }

    @Test func nestedMetadataBecomesJSONArraysAndObjects() throws {
        let capture = Capture()
        capture.logger().info(
            "nested",
            metadata: [
                "count": .stringConvertible(42),
                "recipients": .array(["a@example.com", .stringConvertible(7), .dictionary(["k": "v"])]),
                "smtp": .dictionary(["code": .stringConvertible(250), "lines": .array(["OK", "queued"])]),
            ]
        )
        let object = try capture.onlyObject()
        #expect(object["count"] as? String == "42")
        let recipients = try #require(object["recipients"] as? [Any])
        #expect(recipients.count == 3)
        #expect(recipients[0] as? String == "a@example.com")
        #expect(recipients[1] as? String == "7")
        #expect((recipients[2] as? [String: Any])?["k"] as? String == "v")
        let smtp = try #require(object["smtp"] as? [String: Any])
        #expect(smtp["code"] as? String == "250")
        #expect(smtp["lines"] as? [String] == ["OK", "queued"])
    }

    @Test func newlinesQuotesAndBackslashesAreEscaped() throws {
        let capture = Capture()
        let tricky = "line one\nline \"two\"\t\\ end\r\u{1}"
        capture.logger().error("msg with\nnewline \"quoted\"", metadata: ["reply": "\(tricky)", tricky: "key"])
        let object = try capture.onlyObject()  // also checks the line holds no raw newline
        #expect(object["msg"] as? String == "msg with\nnewline \"quoted\"")
        #expect(object["reply"] as? String == tricky)
        #expect(object[tricky] as? String == "key")
    }

    @Test func metadataCollidingWithFixedFieldsIsPrefixed() throws {
        let capture = Capture()
        capture.logger(label: "relay.api").warning(
            "real",
            metadata: ["ts": "fake-ts", "level": "fake-level", "logger": "fake-logger", "msg": "fake-msg", "meta": "m"]
        )
        let object = try capture.onlyObject()
        #expect(object["level"] as? String == "warning")
        #expect(object["logger"] as? String == "relay.api")
        #expect(object["msg"] as? String == "real")
        #expect(object["ts"] as? String != "fake-ts")
        #expect(object["meta_ts"] as? String == "fake-ts")
        #expect(object["meta_level"] as? String == "fake-level")
        #expect(object["meta_logger"] as? String == "fake-logger")
        #expect(object["meta_msg"] as? String == "fake-msg")
        #expect(object["meta"] as? String == "m")
    }

    @Test func levelFilteringIsLoggersJobNotTheHandlers() throws {
        let capture = Capture()
        let logger = capture.logger(level: .warning)
        logger.info("dropped by Logger")
        logger.debug("dropped by Logger")
        #expect(capture.all.isEmpty)
        // Called directly, the handler writes whatever it is given, whatever its own logLevel.
        var handler = capture.handler(label: "direct")
        handler.logLevel = .critical
        handler.log(event: LogEvent(level: .trace, message: "kept", metadata: nil, source: nil, file: #fileID, function: #function, line: #line))
        #expect(try capture.onlyObject()["msg"] as? String == "kept")
    }

    @Test func anErrorOnTheEventIsRecordedAsStreamLogHandlerDoes() throws {
        struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }
        let capture = Capture()
        capture.handler(label: "relay").log(
            event: LogEvent(
                level: .error, message: "failed", error: Boom(), metadata: nil, source: nil,
                file: #fileID, function: #function, line: #line
            )
        )
        let object = try capture.onlyObject()
        #expect(object["error.message"] as? String == "boom")
        #expect((object["error.type"] as? String)?.hasSuffix("Boom") == true)
    }

    @Test func concurrentWritersNeverInterleaveLines() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("jsonlog-\(UUID().uuidString).jsonl").path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        try #require(fd >= 0)
        defer { unlink(path) }
        let padding = String(repeating: "x", count: 2_000)
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    let logger = Logger(label: "w\(writer)") { label in
                        JSONLogHandler(label: label) { line in JSONLogHandler.writeLine(line, to: fd) }
                    }
                    for index in 0..<200 {
                        logger.info("line", metadata: ["writer": "\(writer)", "index": "\(index)", "pad": "\(padding)"])
                    }
                }
            }
        }
        close(fd)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1_600)
        for line in lines {
            let object = try parse(String(line) + "\n")
            #expect(object["pad"] as? String == padding)
        }
    }
}
