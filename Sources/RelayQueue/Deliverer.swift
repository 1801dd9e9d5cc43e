import DNSClient
import Foundation
import Logging
import NIOCore
import RelayCore
import RelayStore
import SMTPClient
import SMTPCore

/// Recipients of one message at one domain: delivered together in one SMTP transaction per MX connection.
struct DeliveryGroup: Sendable {
    var messageID: UUID
    var domain: String
    var mailFrom: String
    var requiresSMTPUTF8: Bool
    var expiresAt: Date
    var recipients: [ClaimedRecipient]
    /// The envelope sender of each recipient (by recipient id): its VERP bounce address, or the message's own
    /// sender when there is no return path (unit tests).
    var envelopeSenders: [Int64: String] = [:]

    /// The recipients in SMTP transactions: those sharing an envelope sender together (at most
    /// `limit` per transaction), in claim order. With VERP every recipient has its own.
    func transactions(limit: Int) -> [(mailFrom: String, recipients: [ClaimedRecipient])] {
        var order: [String] = []
        var bySender: [String: [ClaimedRecipient]] = [:]
        for recipient in recipients {
            let sender = envelopeSenders[recipient.recipientID] ?? mailFrom
            if bySender[sender] == nil { order.append(sender) }
            bySender[sender, default: []].append(recipient)
        }
        return order.flatMap { sender in
            let list = bySender[sender] ?? []
            return stride(from: 0, to: list.count, by: limit).map { (sender, Array(list[$0..<min($0 + limit, list.count)])) }
        }
    }

    /// Groups claimed rows by (message, domain), keeping claim order; `returnPath` gives each recipient its VERP
    /// envelope sender.
    static func make(from claimed: [ClaimedRecipient], returnPath: ReturnPath? = nil) -> [DeliveryGroup] {
        var order: [String] = []
        var groups: [String: DeliveryGroup] = [:]
        for recipient in claimed {
            let key = "\(recipient.messageID)|\(recipient.domain)"
            if groups[key] == nil {
                order.append(key)
                groups[key] = DeliveryGroup(messageID: recipient.messageID, domain: recipient.domain,
                                            mailFrom: recipient.mailFrom, requiresSMTPUTF8: recipient.requiresSMTPUTF8,
                                            expiresAt: recipient.expiresAt, recipients: [])
            }
            groups[key]?.recipients.append(recipient)
            if let returnPath {
                groups[key]?.envelopeSenders[recipient.recipientID] =
                    returnPath.envelopeSender(recipientID: recipient.recipientID, mailFrom: recipient.mailFrom)
            }
        }
        return order.compactMap { groups[$0] }
    }
}

/// The bytes sent in each SMTP transaction of a group: the stored message, or per transaction a version with
/// recipient-specific header fields (hosted List-Unsubscribe) and DKIM signatures prepended.
struct OutgoingBody: Sendable {
    let bytes: @Sendable (_ recipients: [ClaimedRecipient]) -> ByteBuffer

    /// The same bytes for every transaction.
    init(_ buffer: ByteBuffer) { bytes = { _ in buffer } }

    /// Bytes made per transaction.
    init(_ make: @escaping @Sendable (_ recipients: [ClaimedRecipient]) -> ByteBuffer) { bytes = make }
}

/// What one attempt did to each recipient of a group.
struct GroupAttemptResult: Sendable {
    var outcomes: [(recipient: ClaimedRecipient, outcome: DeliveryOutcome)]
    /// The MX host that answered (or was tried last).
    var mx: String?
    /// The address of the server that ran the session, and its TLS version (nil: not encrypted).
    var remoteIP: String?
    var tlsVersion: String?
    /// Everything said and done during the attempt, over every host tried.
    var transcript: [TranscriptLine] = []
}

/// Delivers one group: resolves the domain's mail exchangers (RFC 5321 §5.1), tries them in preference order,
/// and runs the SMTP transaction on the first that accepts a connection; or, when a smarthost route covers the
/// domain (RouteTable), does the same with the smarthost instead of the MX hosts. Never throws: every failure
/// becomes an outcome per recipient.
struct Deliverer: Sendable {
    /// RFC 5321 §4.5.3.1.8: servers must accept at least 100 recipients per transaction; larger groups are
    /// split into transactions of this size on the same connection.
    static let recipientsPerTransaction = 100

    let resolver: DNSResolver
    let pool: MXConnectionPool
    let configuration: WorkerConfiguration
    let eventLoopGroup: any EventLoopGroup
    let logger: Logger
    let routes: RouteTable

    func deliver(_ group: DeliveryGroup, body: OutgoingBody) async -> GroupAttemptResult {
        let domain = group.domain
        switch await routes.lookup(domain) {
        case .mx:
            break
        case .route(let route):
            // No MX lookup: the smarthost takes the mail, with the same retry, transcripts and classification.
            return await deliver(group, body: body, hosts: [(route.host, nil)],
                                 to: .smarthost(route, configuration: configuration))
        case .unavailable(let detail):
            return .all(group, .deferred(reply: nil, detail: detail))
        }
        // An address literal (RFC 5321 §4.1.3, e.g. user@[192.0.2.1]) names the host itself: no MX lookup.
        if domain.hasPrefix("["), domain.hasSuffix("]") {
            var literal = String(domain.dropFirst().dropLast())
            if literal.lowercased().hasPrefix("ipv6:") { literal = String(literal.dropFirst(5)) }
            return await deliver(group, body: body, hosts: [(literal, [literal])], to: .mx(configuration))
        }
        let hosts: [String]
        do {
            switch try await resolver.mailExchangers(for: domain) {
            case .noSuchDomain:
                return .all(group, .failed(reason: "domain_not_found",
                                           detail: "the domain \(domain) does not exist (NXDOMAIN)", reply: nil))
            case .nullMX:
                return .all(group, .failed(reason: "null_mx",
                                           detail: "the domain \(domain) does not accept mail (null MX, RFC 7505)", reply: nil))
            case .implicit(let host):
                hosts = [host]
            case .exchangers(let records):
                hosts = records.map(\.host)
            }
        } catch {
            return .all(group, .deferred(reply: nil, detail: "MX lookup for \(domain) failed: \(error)"))
        }

        return await deliver(group, body: body, hosts: hosts.map { ($0, nil) }, to: .mx(configuration))
    }

    /// Tries each host in order (addresses looked up unless given) until one runs the transaction.
    private func deliver(_ group: DeliveryGroup, body: OutgoingBody, hosts: [(name: String, addresses: [String]?)],
                         to destination: DeliveryDestination) async -> GroupAttemptResult {
        let domain = group.domain
        var failures: [String] = []
        var lastRejection: DeliveryReply?
        var transcript: [TranscriptLine] = []
        for (host, knownAddresses) in hosts {
            let addresses: [String]
            do {
                if let knownAddresses {
                    addresses = knownAddresses
                } else {
                    addresses = try await resolver.addresses(of: host)
                }
            } catch {
                failures.append("\(host): address lookup failed: \(error)")
                transcript.append(TranscriptLine(direction: "info", text: failures[failures.count - 1]))
                continue
            }
            if addresses.isEmpty {
                failures.append("\(host): no A or AAAA record")
                transcript.append(TranscriptLine(direction: "info", text: failures[failures.count - 1]))
                continue
            }
            addresses: for address in addresses {
                let limiter = pool.limiter(for: host)
                await limiter.acquire()
                let attempt = await deliver(group, body: body, host: host, address: address, destination: destination,
                                            transcript: &transcript)
                limiter.release()
                switch attempt {
                case .done(var result):
                    result.transcript = transcript
                    return result
                case .unreachable(let reason, let reply):
                    failures.append(reason)
                    if let reply { lastRejection = reply }
                case .hostBusy(let reason):
                    failures.append(reason)
                    break addresses
                }
            }
        }
        let detail = failures.isEmpty ? "no mail exchanger for \(domain)" : failures.joined(separator: "; ")
        return GroupAttemptResult(outcomes: group.recipients.map { ($0, .deferred(reply: lastRejection, detail: detail)) },
                                  mx: hosts.last?.name, transcript: transcript)
    }

    private enum HostAttempt {
        case done(GroupAttemptResult)
        /// Could not start a session here; try the next address or MX host.
        case unreachable(String, DeliveryReply?)
        /// The host's cluster-wide connection limit stayed reached; try the next MX host.
        case hostBusy(String)
    }

    private func deliver(_ group: DeliveryGroup, body: OutgoingBody, host: String, address: String,
                         destination: DeliveryDestination, transcript: inout [TranscriptLine]) async -> HostAttempt {
        let key = MXConnectionPool.Key(host: host, address: address, route: destination.route)
        // A reused connection may have been closed by the server while idle; then retry once on a fresh one.
        var reuse = pool.takeIdle(key)
        while true {
            let connection: SMTPConnection
            var uses = 0
            let reused = reuse != nil
            if let (idle, idleUses) = reuse {
                connection = idle
                uses = idleUses
                reuse = nil
                transcript.append(TranscriptLine(
                    direction: "info",
                    text: "reusing the open connection to \(host) [\(address)] (\(connection.tlsVersion ?? "no TLS"), message \(uses + 1) on it)"))
            } else {
                var slot: ClusterConnectionLimiter.Slot?
                if let clusterLimiter = pool.clusterLimiter {
                    switch await clusterLimiter.acquire(host: host) {
                    case .success(let taken):
                        slot = taken
                    case .failure(.busy(let limit, let waited)):
                        let reason = "\(host): all \(limit) connections allowed to it across the cluster stayed in use for \(DurationParsing.format(.milliseconds(waited.milliseconds)))"
                        transcript.append(TranscriptLine(direction: "info", text: reason))
                        return .hostBusy(reason)
                    case .failure(.unavailable(let error)):
                        let reason = "\(host): could not take a connection slot (database unavailable: \(error))"
                        transcript.append(TranscriptLine(direction: "info", text: reason))
                        return .hostBusy(reason)
                    }
                }
                transcript.append(TranscriptLine(direction: "info", text: "connecting to \(host) [\(address)]:\(destination.port)"))
                do {
                    let socketAddress = try SocketAddress(ipAddress: address, port: destination.port)
                    connection = try await SMTPConnection.connect(
                        to: socketAddress, serverName: host, configuration: destination.smtp,
                        eventLoopGroup: eventLoopGroup, logger: logger)
                    pool.opened(connection, slot: slot)
                    transcript += connection.takeTranscript().map(TranscriptLine.init)
                } catch let error as SMTPClientError {
                    if let slot { await pool.release(slot) }
                    transcript += error.transcript.map(TranscriptLine.init)
                    transcript.append(TranscriptLine(direction: "info", text: "\(error)"))
                    await noteThrottle(host: host, replies: [error.reply.map(DeliveryReply.init)], transcript: &transcript)
                    return .unreachable("\(host) [\(address)]: \(error)", error.recipientReply)
                } catch {
                    if let slot { await pool.release(slot) }
                    transcript.append(TranscriptLine(direction: "info", text: "\(error)"))
                    return .unreachable("\(host) [\(address)]: \(error)", nil)
                }
            }
            let session = { (outcomes: [(recipient: ClaimedRecipient, outcome: DeliveryOutcome)]) in
                GroupAttemptResult(outcomes: outcomes, mx: host, remoteIP: address, tlsVersion: connection.tlsVersion)
            }
            var outcomes: [(recipient: ClaimedRecipient, outcome: DeliveryOutcome)] = []
            var chunks = group.transactions(limit: Self.recipientsPerTransaction)[...]
            var failed = false
            while let (sender, chunk) = chunks.popFirst() {
                let envelope = SMTPEnvelope(mailFrom: sender, recipients: chunk.map(\.email),
                                            requiresSMTPUTF8: group.requiresSMTPUTF8)
                do {
                    let result = try await connection.send(envelope, message: body.bytes(chunk))
                    uses += 1
                    // A transaction left open (no recipient accepted) was already reset by the connection.
                    outcomes += Self.outcomes(for: chunk, result: result)
                    transcript += connection.takeTranscript().map(TranscriptLine.init)
                    let replies = [result.mailFrom] + result.recipients.compactMap { $0 } + [result.data].compactMap { $0 }
                    await noteThrottle(host: host, replies: replies.map(DeliveryReply.init), transcript: &transcript)
                } catch let error as SMTPClientError {
                    await pool.close(connection)
                    transcript += connection.takeTranscript().map(TranscriptLine.init)
                    await noteThrottle(host: host, replies: [error.reply.map(DeliveryReply.init)], transcript: &transcript)
                    if reused && outcomes.isEmpty && error.phase == .mailFrom {
                        logger.debug("cached connection failed, reconnecting", metadata: ["mx": "\(host)"])
                        failed = true
                        break
                    }
                    let detail = error.phase == .endOfData
                        ? "outcome unknown, will retry (a duplicate is possible): \(error)"
                        : "\(error)"
                    let unknown = error.phase == .endOfData ? DeliveryOutcome.outcomeUnknown : nil
                    outcomes += chunk.map {
                        ($0, .deferred(reply: error.reply.map(DeliveryReply.init), detail: "\(host) [\(address)]: \(detail)", reason: unknown))
                    }
                    for (_, rest) in chunks {
                        outcomes += rest.map { ($0, .deferred(reply: nil, detail: "\(host) [\(address)]: not sent: \(error)")) }
                    }
                    return .done(session(outcomes))
                } catch {
                    await pool.close(connection)
                    transcript += connection.takeTranscript().map(TranscriptLine.init)
                    transcript.append(TranscriptLine(direction: "info", text: "\(error)"))
                    outcomes += chunk.map { ($0, .deferred(reply: nil, detail: "\(host) [\(address)]: \(error)")) }
                    return .done(session(outcomes))
                }
            }
            if failed { continue }
            await pool.giveBack(key, connection, uses: uses)
            return .done(session(outcomes))
        }
    }

    /// Lowers the host's cluster-wide connection limit when one of the replies asks Relay to slow down.
    private func noteThrottle(host: String, replies: [DeliveryReply?], transcript: inout [TranscriptLine]) async {
        guard let clusterLimiter = pool.clusterLimiter,
              let reply = replies.compactMap({ $0 }).first(where: ClusterConnectionLimiter.isThrottle) else { return }
        if let limit = await clusterLimiter.throttle(host: host, reply: reply) {
            transcript.append(TranscriptLine(
                direction: "info",
                text: "\(host) asked to slow down: at most \(limit) connection\(limit == 1 ? "" : "s") to it across the cluster for \(DurationParsing.format(clusterLimiter.throttleTime))"))
        }
    }

    /// Maps one transaction's replies to per-recipient outcomes.
    static func outcomes(for recipients: [ClaimedRecipient], result: SMTPTransactionResult) -> [(recipient: ClaimedRecipient, outcome: DeliveryOutcome)] {
        let mailReply = DeliveryReply(result.mailFrom)
        guard mailReply.isSuccess else {
            return recipients.map { ($0, OutcomeClassifier.classify(mailReply)) }
        }
        let dataReply = result.data.map(DeliveryReply.init)
        return recipients.enumerated().map { index, recipient in
            guard index < result.recipients.count, let rcpt = result.recipients[index] else {
                return (recipient, .deferred(reply: nil, detail: "RCPT TO was not sent"))
            }
            let rcptReply = DeliveryReply(rcpt)
            guard rcptReply.isSuccess else {
                return (recipient, OutcomeClassifier.classifyRecipientRejection(rcptReply))
            }
            guard let dataReply else {
                return (recipient, .deferred(reply: nil, detail: "the message data was not sent"))
            }
            return (recipient, OutcomeClassifier.classify(dataReply))
        }
    }
}

extension GroupAttemptResult {
    static func all(_ group: DeliveryGroup, _ outcome: DeliveryOutcome) -> GroupAttemptResult {
        GroupAttemptResult(outcomes: group.recipients.map { ($0, outcome) }, mx: nil,
                           transcript: [TranscriptLine(direction: "info", text: outcome.detail ?? "\(outcome.status)")])
    }
}

extension TranscriptLine {
    /// Converts a client transcript entry into the stored form.
    init(_ entry: SMTPTranscriptEntry) {
        self.init(direction: entry.direction.rawValue, text: entry.text, at: entry.at)
    }
}

extension DeliveryReply {
    /// Converts a parsed SMTP reply into the stored form.
    init(_ reply: SMTPReply) {
        self.init(code: reply.code, enhanced: reply.enhancedCode?.description, text: reply.text)
    }
}
