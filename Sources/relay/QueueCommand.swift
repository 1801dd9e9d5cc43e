import ArgumentParser
import Foundation
import RelayApp
import RelayCore
import RelayStore

/// `relay queue retry|cancel`: the operator's bulk queue operations, over every tenant unless `--tenant` names one.
struct Queue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Retry or cancel pending recipients in bulk.",
        discussion: """
            Only recipients waiting in the queue (queued or deferred) and not being delivered right now are touched. \
            Filters combine with AND; without --tenant every tenant's recipients are selected. At least one filter \
            besides --tenant is required, or --all.
            """,
        subcommands: [Retry.self, Cancel.self])

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make the selected pending recipients due now.")
        @OptionGroup var filter: QueueFilterOptions
        @OptionGroup var options: ConfigurationOptions

        func run() async throws {
            try await filter.run(.retry, options: options)
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel the selected pending recipients (status canceled, an event each).")
        @OptionGroup var filter: QueueFilterOptions
        @OptionGroup var options: ConfigurationOptions

        func run() async throws {
            try await filter.run(.cancel, options: options)
        }
    }
}

/// The filters of `relay queue retry|cancel`, the same as the API's `POST /v1/queue/*` body.
struct QueueFilterOptions: ParsableArguments {
    @Option(help: "Only this tenant's recipients (uuid); all tenants when omitted") var tenant: String?
    @Option(help: "Recipients at this domain") var domain: String?
    @Option(help: "queued or deferred") var status: String?
    @Option(help: "Recipients of messages with this tag") var tag: String?
    @Option(name: .customLong("enhanced-code"), help: "Recipients whose last reply had this enhanced status code, e.g. 4.7.1")
    var enhancedCode: String?
    @Option(help: "Messages accepted at or after this RFC 3339 time") var since: String?
    @Option(help: "Messages accepted before this RFC 3339 time") var until: String?
    @Flag(name: .customLong("dry-run"), help: "Only count what would be affected") var dryRun = false
    @Flag(help: "Select every pending recipient (of --tenant, or of all tenants) when no other filter is given")
    var all = false

    /// The selection these options name.
    func selection() throws -> QueueSelection {
        var selection = QueueSelection()
        if let tenant {
            guard let id = UUID(uuidString: tenant) else { throw ValidationError("--tenant must be a tenant id (uuid)") }
            selection.tenantID = id
        }
        selection.domain = domain?.lowercased()
        if let status {
            guard let parsed = RecipientStatus(rawValue: status), !parsed.isFinal else {
                throw ValidationError("--status must be queued or deferred")
            }
            selection.status = parsed
        }
        selection.tag = tag
        selection.enhancedCode = enhancedCode
        selection.since = try since.map { try Self.time($0, option: "--since") }
        selection.until = try until.map { try Self.time($0, option: "--until") }
        if selection.isUnfiltered && !all {
            throw ValidationError("give at least one filter (--domain, --status, --tag, --enhanced-code, --since, --until), or --all")
        }
        return selection
    }

    static func time(_ text: String, option: String) throws -> Date {
        guard let date = try? Date.ISO8601FormatStyle(includingFractionalSeconds: text.contains(".")).parse(text) else {
            throw ValidationError("\(option) must be an RFC 3339 time such as 2026-11-29T10:00:00Z")
        }
        return date
    }

    /// Runs `operation` and prints what it did.
    func run(_ operation: QueueOperation, options: ConfigurationOptions) async throws {
        let count = try await RelayRunner.queueOperation(operation, selection: selection(), dryRun: dryRun,
                                                         configuration: options.resolve())
        let noun = count == 1 ? "recipient" : "recipients"
        let verb = operation == .retry ? "retried" : "canceled"
        print(dryRun ? "\(count) \(noun) would be \(verb)" : "\(verb) \(count) \(noun)")
    }
}
