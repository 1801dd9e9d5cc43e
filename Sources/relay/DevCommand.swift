import ArgumentParser
import Foundation
import RelayApp

/// `relay dev …`: tools for developers and for measuring, never for production data.
struct Dev: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Developer tools.", subcommands: [Seed.self])

    struct Seed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fill the database with a realistic delivery log (messages, events, attempts, statistics).",
            discussion: """
                Inserts N messages of the tenant (created if missing, with sender domain seed.example) accepted over \
                the last D days, with recipients, outcomes, events, SMTP attempts with transcripts and the hourly \
                statistics. Nothing is sent: recipients left in flight are not due before their message expires. \
                The same --seed gives the same data.
                """)

        @Option(help: "How many messages to insert") var messages: Int
        @Option(help: "The tenant's name (created if missing)") var tenant = "seed"
        @Option(help: "Spread the messages over this many days before now") var days = 30
        @Option(help: "Seed of the generator: the same seed gives the same rows") var seed: Int64 = 1
        @OptionGroup var options: ConfigurationOptions

        func validate() throws {
            guard messages >= 1 else { throw ValidationError("--messages must be at least 1") }
            guard (1...3650).contains(days) else { throw ValidationError("--days must be 1–3650") }
            let name = tenant.trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, name.count <= 200 else { throw ValidationError("the tenant name must be 1–200 characters") }
        }

        func run() async throws {
            try await RelayRunner.seed(messages: messages, tenantName: tenant.trimmingCharacters(in: .whitespaces),
                                       days: days, seed: seed, configuration: options.resolve())
        }
    }
}
