import Crypto
import Foundation
import Logging
import MailMessage
import NIOCore
import RelayCore
import RelayStore
import SMTPCore
import SMTPServer

/// Relay's side of SMTP submission (RFC 6409): API keys as passwords with a cluster-wide lockout, the
/// sender-domain policy, and storing accepted messages in the same queue as the HTTP API.
public struct RelaySubmissionBackend: SubmissionBackend {
    /// Settings of the submission policy.
    public struct Settings: Sendable {
        /// `RELAY_HOSTNAME`: the Received header's "by" and the Message-ID domain.
        public var hostname: String
        /// `RELAY_SMTP_AUTH_FAILURES` (default 5): failed AUTH attempts from one IP within `lockoutWindow`
        /// after which further attempts get 421 4.7.0.
        public var authFailureLimit: Int = 5
        /// The lockout window (10 minutes).
        public var lockoutWindow: Duration = .seconds(600)
        /// `RELAY_MAX_QUEUE_LIFETIME`.
        public var messageLifetime: Duration
        /// `RELAY_REQUIRE_VERIFIED_DOMAINS`: only senders whose domain's DKIM record verified may submit.
        public var requireVerifiedDomains = false
        /// `RELAY_TENANT_RATE_LIMIT`: messages per tenant per minute, cluster-wide (nil: no limit); over it 451 4.7.1.
        public var tenantRateLimit: Int?

        /// Creates settings.
        public init(hostname: String, messageLifetime: Duration) {
            self.hostname = hostname
            self.messageLifetime = messageLifetime
        }
    }

    let database: RelayDatabase
    let settings: Settings
    let logger: Logger
    let onEnqueued: @Sendable () -> Void

    /// Creates the backend.
    public init(database: RelayDatabase, settings: Settings, logger: Logger, onEnqueued: @escaping @Sendable () -> Void = {}) {
        self.database = database
        self.settings = settings
        self.logger = logger
        self.onEnqueued = onEnqueued
    }

    /// Any user name; the password is an API key. The same answer for an unknown user and a wrong password.
    public func authenticate(username: String, password: String, remoteAddress: String) async -> AuthenticationResult {
        do {
            let failures = try await database.recentAuthFailures(ip: remoteAddress, window: settings.lockoutWindow)
            if failures >= settings.authFailureLimit {
                logger.warning("SMTP AUTH locked out", metadata: ["ip": "\(remoteAddress)", "failures": "\(failures)"])
                return .lockedOut
            }
            if let tenant = try await database.tenantID(forAPIKeyHash: RelayDatabase.hashAPIKey(password)) {
                return .accepted(principal: tenant.uuidString.lowercased())
            }
            try await database.recordAuthFailure(ip: remoteAddress, window: settings.lockoutWindow)
            return .rejected
        } catch {
            // Without the database nobody can be authenticated, but the credentials may well be right: 454 4.7.0
            // (try again later), never 535, which tells the client its password is wrong.
            logger.error("SMTP AUTH could not reach the database", metadata: ["error": "\(String(reflecting: error))"])
            return .temporaryFailure
        }
    }

    /// The envelope sender's domain must be registered to the authenticated tenant (no open relay, no spoofing).
    public func checkSender(principal: String, address: String) async -> SenderVerdict {
        guard let tenant = UUID(uuidString: principal) else { return .rejected(Self.reply(550, "5.7.1", "Sender not allowed")) }
        guard let parsed = try? EmailAddress(parsing: address) else {
            return .rejected(Self.reply(550, "5.7.1", "The null or an invalid sender cannot submit mail"))
        }
        do {
            let checks = try await database.sendChecks(tenantID: tenant, senderDomain: parsed.normalizedDomain, recipients: [])
            if checks.pausedReason != nil {
                return .rejected(Self.reply(550, "5.7.1", "Sending is paused for this account by the reputation guard (bounce or complaint rate too high); ask the operator to resume it"))
            }
            guard checks.domainRegistered else {
                return .rejected(Self.reply(550, "5.7.1", "Sender domain \(parsed.normalizedDomain) is not registered to this account"))
            }
            if settings.requireVerifiedDomains && !checks.domainVerified {
                return .rejected(Self.reply(550, "5.7.1", "Sender domain \(parsed.normalizedDomain) is not verified: publish its DKIM record and verify it (POST /v1/domains/\(parsed.normalizedDomain)/verify)"))
            }
            return .accepted
        } catch {
            return .rejected(Self.reply(451, "4.3.0", "Temporary failure checking the sender, try again later"))
        }
    }

    /// Prepares and stores a submitted message; 250 only after the commit.
    public func commit(_ submission: SubmittedMessage) async -> SMTPReply {
        guard let tenant = UUID(uuidString: submission.principal) else { return Self.reply(451, "4.3.0", "Not authenticated") }
        do {
            let prepared: PreparedSubmission
            switch try await prepare(submission, tenant: tenant) {
            case .rejected(let reply): return reply
            case .ready(let value): prepared = value
            }
            if let limit = settings.tenantRateLimit,
               case .refused(let seconds) = try await database.reserveSends(tenantID: tenant, count: 1, limit: limit) {
                return Self.reply(451, "4.7.1", "Rate limit of \(limit) messages per minute reached, try again in \(seconds) seconds")
            }
            switch try await database.enqueue(prepared.message, idempotency: prepared.idempotency) {
            case .stored:
                onEnqueued()
                return Self.reply(250, "2.0.0", "Ok: queued as \(prepared.message.id.uuidString.lowercased())")
            case .replay(_, let body):
                let id = (try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])?["id"] as? String ?? "?"
                return Self.reply(250, "2.0.0", "Ok: already queued as \(id) (Relay-Idempotency-Key)")
            case .idempotencyConflict:
                return Self.reply(554, "5.7.0", "Relay-Idempotency-Key was used for a different message in the last 24 hours")
            }
        } catch where error.isDatabaseUnavailable {
            logger.warning("SMTP submission could not be stored: database unavailable")
            return Self.reply(451, "4.3.0", "Temporary failure storing the message, try again later")
        } catch {
            logger.error("SMTP submission failed", metadata: ["error": "\(String(reflecting: error))"])
            return Self.reply(451, "4.3.0", "Temporary failure storing the message, try again later")
        }
    }

    struct PreparedSubmission {
        var message: NewMessage
        var idempotency: IdempotencyRequest?
    }

    enum Preparation {
        case ready(PreparedSubmission)
        case rejected(SMTPReply)
    }

    /// Header policy and rewriting: every From address must be in a registered domain; Relay's control
    /// headers (X-Relay-Tags, X-Relay-Metadata-*, Relay-Idempotency-Key) and Bcc are removed; Message-ID and
    /// Date are added when missing; a Received header is prepended (RFC 5321 §4.4).
    func prepare(_ submission: SubmittedMessage, tenant: UUID) async throws -> Preparation {
        var headers = HeaderSection(parsing: submission.data)
        let fromValues = headers.values("From")
        guard !fromValues.isEmpty else { return .rejected(Self.reply(550, "5.6.0", "The message has no From header")) }
        var fromMailboxes: [Mailbox] = []
        for value in fromValues {
            guard let list = try? Mailbox.parseList(MIMEHeader(name: "From", value: value).decodedValue), !list.isEmpty else {
                return .rejected(Self.reply(550, "5.6.0", "The From header cannot be parsed"))
            }
            fromMailboxes += list
        }
        let recipients = Self.deduplicated(submission.recipients)
        // Suppressed addresses are stored as `suppressed` and never attempted; the others go ahead. They are read
        // with the first From domain's standing, in one round trip (docs/benchmarks.md, B4).
        var suppressed: [String: String] = [:]
        for (index, mailbox) in fromMailboxes.enumerated() {
            let domain = mailbox.address.normalizedDomain
            let checks = try await database.sendChecks(tenantID: tenant, senderDomain: domain,
                                                       recipients: index == 0 ? recipients : [])
            if index == 0 { suppressed = checks.suppressed }
            if !checks.domainRegistered {
                return .rejected(Self.reply(550, "5.7.1", "From domain \(domain) is not registered to this account"))
            }
            if settings.requireVerifiedDomains && !checks.domainVerified {
                return .rejected(Self.reply(550, "5.7.1", "From domain \(domain) is not verified: publish its DKIM record and verify it"))
            }
        }

        let tags = headers.values("X-Relay-Tags").flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        if tags.count > 10 { return .rejected(Self.reply(550, "5.6.0", "At most 10 tags are allowed in X-Relay-Tags")) }
        var metadata: [String: String] = [:]
        for field in headers.fields where field.name.lowercased().hasPrefix("x-relay-metadata-") {
            metadata[String(field.name.dropFirst("x-relay-metadata-".count))] = field.value
        }
        if metadata.count > 20 { return .rejected(Self.reply(550, "5.6.0", "At most 20 X-Relay-Metadata-* headers are allowed")) }
        let idempotencyKey = headers.values("Relay-Idempotency-Key").first
        if let idempotencyKey, idempotencyKey.isEmpty || idempotencyKey.count > 256 {
            return .rejected(Self.reply(550, "5.6.0", "Relay-Idempotency-Key must be 1-256 characters"))
        }
        let subject = headers.values("Subject").first.map { MIMEHeader(name: "Subject", value: $0).decodedValue } ?? ""

        headers.removeAll { $0 == "bcc" || $0 == "x-relay-tags" || $0 == "relay-idempotency-key" || $0.hasPrefix("x-relay-metadata-") }
        let id = TimeOrderedUUID.make()
        var messageIDHeader = headers.values("Message-ID").first?.trimmingCharacters(in: CharacterSet(charactersIn: "<> "))
        if messageIDHeader == nil || messageIDHeader!.isEmpty {
            let generated = "\(id.uuidString.lowercased())@\(settings.hostname)"
            headers.fields.append(.init(name: "Message-ID", value: "<\(generated)>"))
            messageIDHeader = generated
        }
        if !headers.contains("Date") {
            headers.fields.append(.init(name: "Date", value: RFC5322Date.format(Date())))
        }
        let received = "from \(submission.heloName) ([\(submission.remoteAddress)])\r\n\tby \(settings.hostname) (Relay) with "
            + "\(submission.tlsActive ? "ESMTPSA" : "ESMTPA") id \(id.uuidString.lowercased());\r\n\t\(RFC5322Date.format(Date()))"
        headers.fields.insert(.init(name: "Received", value: received), at: 0)
        let body = headers.serialized()

        let metadataJSON = String(decoding: (try? JSONEncoder().encode(metadata)) ?? Data("{}".utf8), as: UTF8.self)
        var message = NewMessage(
            id: id, tenantID: tenant, mailFrom: submission.mailFrom,
            fromHeader: fromMailboxes.map(\.description).joined(separator: ", "), subject: subject,
            messageIDHeader: messageIDHeader ?? "", tags: tags, metadataJSON: metadataJSON, body: ByteBuffer(bytes: body),
            requiresSMTPUTF8: submission.requiresSMTPUTF8,
            recipients: recipients.map { ($0, Self.domain(of: $0)) }, lifetime: settings.messageLifetime)
        message.suppressed = suppressed
        let idempotency = idempotencyKey.map { key in
            IdempotencyRequest(key: key, requestHash: Array(SHA256.hash(data: submission.data)),
                               statusCode: 202, responseBody: "{\"id\":\"\(id.uuidString.lowercased())\"}")
        }
        return .ready(PreparedSubmission(message: message, idempotency: idempotency))
    }

    static func domain(of address: String) -> String {
        (try? EmailAddress(parsing: address).normalizedDomain) ?? String(address.split(separator: "@").last ?? "").lowercased()
    }

    static func deduplicated(_ recipients: [String]) -> [String] {
        var seen = Set<String>()
        return recipients.filter { address in
            let at = address.lastIndex(of: "@") ?? address.endIndex
            return seen.insert(String(address[..<at]) + address[at...].lowercased()).inserted
        }
    }

    static func reply(_ code: Int, _ enhanced: String, _ text: String) -> SMTPReply {
        SMTPReply(code: code, enhancedCode: EnhancedStatusCode(enhanced), text: text)
    }
}
