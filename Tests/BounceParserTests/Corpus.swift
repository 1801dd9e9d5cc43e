import Foundation

/// The sample corpus in Tests/Fixtures/bounces (sisimai/set-of-emails, BSD-2) and its expected answers.
enum Corpus {
    /// Tests/Fixtures/bounces, found from this file's path (no bundle resources needed).
    static let directory: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures/bounces")

    /// The raw bytes of one sample.
    static func sample(_ name: String) -> [UInt8] {
        let url = directory.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            fatalError("missing fixture \(url.path)")
        }
        return Array(data)
    }

    /// Every `.eml` file, sorted.
    static var sampleNames: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".eml") }.sorted()
    }

    /// One row of expected.tsv: the sisimai library's answer for one recipient of one sample.
    struct Row: Sendable {
        let file: String
        let index: Int
        let status: String
        let replyCode: Int?
        let reason: String
        let hardBounce: Bool
    }

    /// expected.tsv grouped by file, rows in recipient order.
    static let expected: [String: [Row]] = {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent("expected.tsv").path) else { return [:] }
        var rows: [String: [Row]] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n").dropFirst() {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 6, let index = Int(fields[1]) else { continue }
            rows[fields[0], default: []].append(Row(file: fields[0], index: index, status: fields[2], replyCode: Int(fields[3]),
                                                    reason: fields[4], hardBounce: fields[5] == "true"))
        }
        return rows
    }()

    /// The family of a sample: its name without the trailing number (`lhost-postfix`, `rfc3464`, `arf`).
    static func family(_ name: String) -> String {
        let stem = name.hasSuffix(".eml") ? String(name.dropLast(4)) : name
        guard let dash = stem.lastIndex(of: "-"), stem[stem.index(after: dash)...].allSatisfy(\.isNumber) else { return stem }
        return String(stem[..<dash])
    }
}
