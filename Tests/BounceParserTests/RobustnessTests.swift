import BounceParser
import Foundation
import Testing

/// The parser takes untrusted input: it must answer for anything, quickly.
@Suite struct RobustnessTests {
    @Test func everySampleTruncatedAnywhereStillParses() {
        for name in Corpus.sampleNames {
            let bytes = Corpus.sample(name)
            for fraction in [0.0, 0.1, 0.25, 0.5, 0.75, 0.9] {
                let cut = Int(Double(bytes.count) * fraction)
                _ = BounceParser.parse(Array(bytes.prefix(cut)))
            }
        }
    }

    @Test func everySampleWithBytesFlippedStillParses() {
        var generator = SplitMix(seed: 7)
        for name in Corpus.sampleNames {
            let bytes = Corpus.sample(name)
            guard !bytes.isEmpty else { continue }
            for _ in 0..<4 {
                var mutated = bytes
                for _ in 0..<16 {
                    let position = Int(generator.next() % UInt64(mutated.count))
                    mutated[position] = UInt8(truncatingIfNeeded: generator.next())
                }
                _ = BounceParser.parse(mutated)
            }
        }
    }

    @Test func deeplyNestedJSONDoesNotCrash() {
        let depth = 100_000
        let json = "{\"notificationType\":\"Bounce\",\"x\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        _ = BounceParser.parse(Array(("Subject: AWS Notification Message\r\n\r\n" + json).utf8))
    }

    @Test func garbageIsNotABounce() {
        var generator = SplitMix(seed: 42)
        for length in [0, 1, 2, 17, 100, 1_000, 10_000, 100_000] {
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            #expect(BounceParser.parse(bytes).kind == .notABounce)
        }
    }

    @Test(arguments: [
        "", "\r\n", "From: MAILER-DAEMON\r\n\r\n", ":\r\n\r\n<", "Content-Type: multipart/report; boundary=x\r\n\r\n--x\r\n",
        "Content-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822;\r\nAction: failed\r\nStatus: 9.9.9\r\n",
        "Subject: Undelivered Mail Returned to Sender\r\n\r\n<>: \r\n<@>: host said: 550\r\n<a@b.c>:",
        "Subject: x\r\n\r\n{\"notificationType\":\"Bounce\",\"bounce\":{\"bouncedRecipients\":[{}]}}",
        "Subject: x\r\n\r\n{\"notificationType\":", "X-Failed-Recipients: ,,,\r\n\r\nThe following address(es) failed:\r\n  \r\n  x",
    ])
    func malformedReportsDoNotCrash(_ text: String) {
        _ = BounceParser.parse(Array(text.utf8))
    }

    /// Many recipients, very long lines, deep nesting: the work stays bounded.
    @Test func hugeInputsStayFast() {
        var dsn = "From: MAILER-DAEMON@example.com\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.com\r\n"
        for index in 0..<20_000 {
            dsn += "\r\nFinal-Recipient: rfc822; user\(index)@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        }
        dsn += "--b--\r\n"
        let longLine = "Subject: Undelivered Mail Returned to Sender\r\n\r\n<a@example.com>: " + String(repeating: "550 x ", count: 1_000_000)
        var nested = "Content-Type: multipart/mixed; boundary=n0\r\n\r\n"
        for depth in 1..<200 { nested += "--n\(depth - 1)\r\nContent-Type: multipart/mixed; boundary=n\(depth)\r\n\r\n" }
        let started = ContinuousClock.now
        for input in [dsn, longLine, nested, String(repeating: "A: b\r\n", count: 500_000)] {
            _ = BounceParser.parse(Array(input.utf8))
        }
        #expect(ContinuousClock.now - started < .seconds(60))
    }
}

/// A small deterministic generator for the garbage test.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
