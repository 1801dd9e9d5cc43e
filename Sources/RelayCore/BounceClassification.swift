/// Why a recipient bounced, in Relay's small vocabulary (webhooks, suppression, the log).
///
/// The labels are stable strings: they are stored and sent to customers.
public enum BounceReason: String, Sendable, Codable, CaseIterable {
    /// The mailbox does not exist, was disabled, or moved without forwarding (RFC 3463 X.1.1, X.1.6, X.2.1).
    case mailboxUnknown = "mailbox_unknown"
    /// The mailbox exists but is over quota (X.2.2).
    case mailboxFull = "mailbox_full"
    /// The recipient's domain does not exist or accepts no mail (X.1.2, RFC 7505 null MX X.1.10).
    case domainNotFound = "domain_not_found"
    /// Refused by the receiver's policy: spam filters, block lists, sender reputation, SPF/DKIM/DMARC,
    /// reverse DNS, relaying (X.7.1 and most of X.7.x).
    case policyOrSpamBlock = "policy_or_spam_block"
    /// Too many messages, connections or recipients; the receiver asks to slow down (4.7.x, 421, 452).
    case rateLimited = "rate_limited"
    /// The message is larger than the receiver accepts (X.2.3, X.3.4).
    case messageTooLarge = "message_too_large"
    /// The receiver requires TLS (X.7.10, X.7.11, "Must issue a STARTTLS command first").
    case tlsRequired = "tls_required"
    /// The receiver requires SMTP authentication, or refused the credentials (X.7.0, X.7.8, 530, 535).
    case authRequired = "auth_required"
    /// The content was refused: virus, forbidden attachment, media type (X.6.x).
    case contentRejected = "content_rejected"
    /// No usable reply: connection refused or timed out, DNS failure, or the queue lifetime ran out (X.4.x).
    case network
    /// Anything else.
    case other
}

/// Hard bounces say the address itself is bad and should be suppressed; soft ones may succeed later.
public enum BounceType: String, Sendable, Codable {
    case hard, soft
}

/// The verdict on one failed recipient: permanent or not, why, and hard or soft.
public struct BounceClassification: Sendable, Hashable {
    /// Whether the receiver refused for good: a 5xx reply, or a 5.x.x status when there is no reply code.
    public var permanent: Bool
    /// Why it failed.
    public var reason: BounceReason
    /// Hard or soft (see ``BounceClassifier`` for the rule).
    public var type: BounceType

    /// Creates a classification with an explicit type.
    public init(permanent: Bool, reason: BounceReason, type: BounceType) {
        self.permanent = permanent
        self.reason = reason
        self.type = type
    }

    /// Creates a classification whose type follows the rule of ``BounceClassifier/type(permanent:reason:)``.
    public init(permanent: Bool, reason: BounceReason) {
        self.init(permanent: permanent, reason: reason, type: BounceClassifier.type(permanent: permanent, reason: reason))
    }
}

/// Classifies an SMTP reply — code, RFC 3463 enhanced status code and text — into a ``BounceClassification``.
/// Pure and synchronous: the delivery worker calls it on a rejection, the bounce parser on each failed
/// recipient of a delivery report.
///
/// **Reason**, first rule that decides wins:
/// 1. The enhanced status code (RFC 3463, registry of RFC 5248), `enhancedRules` below. A code whose meaning
///    is precise decides alone (5.1.1 → mailbox_unknown). A code that is ambiguous (X.7.0, 4.7.x, 5.1.10,
///    X.4.4, …) lets the text refine it — into any reason, or only into the ones listed (5.7.x may become
///    tls_required or auth_required: "530 5.7.57 Client was not authenticated") — and otherwise gives its
///    default. Codes that say little (5.0.0, 5.1.0, 5.5.1 …) fall through to the text.
/// 2. The text: well-known phrases of providers and MTAs, `textRules` below (Gmail, Microsoft, Yahoo,
///    block lists, Postfix/Exim/qmail wording). They come before the bare reply code because "550" alone
///    fits a missing mailbox, a block-list hit and a DMARC failure alike.
/// 3. The reply code, `replyCodeRules` below (421, 452, 552, 530/535/538 …).
/// 4. Otherwise `other`; with no code, no status and no text at all (no reply), `network`.
///
/// **Permanent**: a 5xx reply code; without a code, a 5.x.x status. A 4xx (or 4.x.x) failure is transient.
///
/// **Type**: `hard` when the failure is permanent and the reason says the address or its domain is unusable —
/// `mailbox_unknown` (which covers mailboxes that are disabled or moved: X.2.1, X.1.6, X.7.13, X.7.17) and
/// `domain_not_found` (which covers null MX) — so suppressing the address is right. Everything else is `soft`:
/// transient failures, full mailboxes, rate limits, network trouble, and permanent refusals aimed at the
/// sender or the content rather than the address (spam and policy blocks, authentication, TLS, size, content):
/// the same address can receive a different message, or the same one from a better-reputed sender, so a
/// block must not suppress it.
public enum BounceClassifier {
    /// Classifies a reply. `code` is the three-digit reply code, `enhanced` the `class.subject.detail` status
    /// (when nil, one at the start of `text`, after an optional reply code, is used), `text` the reply text.
    public static func classify(code: Int?, enhanced: String?, text: String) -> BounceClassification {
        let status = enhanced.flatMap(Status.init) ?? Status.leading(in: text)
        let permanent: Bool
        if let code, (200..<600).contains(code) {
            permanent = code >= 500
        } else {
            permanent = status?.statusClass == 5
        }
        return BounceClassification(permanent: permanent, reason: reason(code: code, status: status, text: text))
    }

    /// Classifies a reply as Relay stores it.
    public static func classify(_ reply: DeliveryReply) -> BounceClassification {
        classify(code: reply.code, enhanced: reply.enhanced, text: reply.text)
    }

    /// A failure without any reply (connection refused, timeout, DNS): transient, `network`, soft.
    public static let networkFailure = BounceClassification(permanent: false, reason: .network, type: .soft)

    /// The hard/soft rule (see the type's documentation): hard only for a permanent failure whose reason
    /// condemns the address itself.
    public static func type(permanent: Bool, reason: BounceReason) -> BounceType {
        guard permanent else { return .soft }
        switch reason {
        case .mailboxUnknown, .domainNotFound: return .hard
        default: return .soft
        }
    }

    /// The reason alone, by the rules above.
    public static func reason(code: Int?, enhanced: String?, text: String) -> BounceReason {
        reason(code: code, status: enhanced.flatMap(Status.init) ?? Status.leading(in: text), text: text)
    }

    static func reason(code: Int?, status: Status?, text: String) -> BounceReason {
        let lowered = text.lowercased()
        if let status, let rule = enhancedRules.first(where: { $0.matches(status) }) {
            if let fromText = textReason(lowered), rule.refinements.contains(fromText) { return fromText }
            if let reason = rule.reason { return reason }
        }
        if let fromText = textReason(lowered) { return fromText }
        if let code, let rule = replyCodeRules.first(where: { $0.code == code }) { return rule.reason }
        if code == nil, status == nil, lowered.allSatisfy(\.isWhitespace) { return .network }
        return .other
    }

    static func textReason(_ lowered: String) -> BounceReason? {
        guard !lowered.isEmpty else { return nil }
        return textRules.first { rule in rule.phrases.contains { lowered.contains($0) } }?.reason
    }

    // MARK: - Rule tables

    /// One row of the enhanced-status table. `pattern` is `class.subject.detail` where `X` matches 4 or 5
    /// and `*` any detail. `reason` nil means "says nothing precise": the text and the reply code decide.
    /// `refinements` are the reasons a text rule may put in place of `reason`.
    struct EnhancedRule: Sendable {
        let pattern: String
        let reason: BounceReason?
        let refinements: Set<BounceReason>
        let parsed: (statusClass: Int?, subject: Int, detail: Int?)

        init(_ pattern: String, _ reason: BounceReason?, refinedBy refinements: Set<BounceReason> = []) {
            self.pattern = pattern
            self.reason = reason
            self.refinements = reason == nil ? Set(BounceReason.allCases) : refinements
            let parts = pattern.split(separator: ".")
            parsed = (Int(parts[0]), Int(parts[1]) ?? 0, Int(parts[2]))
        }

        func matches(_ status: Status) -> Bool {
            if let statusClass = parsed.statusClass, statusClass != status.statusClass { return false }
            if let detail = parsed.detail, detail != status.detail { return false }
            return parsed.subject == status.subject
        }
    }

    static let anyReason = Set(BounceReason.allCases)
    static let tlsOrAuth: Set<BounceReason> = [.tlsRequired, .authRequired]

    /// RFC 3463 §3 and the IANA registry of RFC 5248. First match wins, so exact codes precede wildcards.
    static let enhancedRules: [EnhancedRule] = [
        // X.1.x addressing.
        EnhancedRule("X.1.1", .mailboxUnknown),                      // bad destination mailbox address
        EnhancedRule("X.1.2", .domainNotFound),                      // bad destination system address (host unknown)
        EnhancedRule("X.1.3", .mailboxUnknown),                      // bad destination mailbox address syntax
        EnhancedRule("X.1.6", .mailboxUnknown),                      // mailbox has moved, no forwarding address
        EnhancedRule("X.1.7", .policyOrSpamBlock),                   // bad sender's mailbox address syntax
        EnhancedRule("X.1.8", .policyOrSpamBlock),                   // bad sender's system address
        // RFC 7505 registers X.1.10 as "recipient address has null MX"; Microsoft uses 5.1.10 for
        // "RecipientNotFound", so the text may turn it into mailbox_unknown (hard either way).
        EnhancedRule("X.1.10", .domainNotFound, refinedBy: [.mailboxUnknown]),
        EnhancedRule("X.1.*", nil),
        // X.2.x mailbox.
        // Mailbox disabled, not accepting messages; Gmail also sends 5.2.1 for "receiving mail at a rate …".
        EnhancedRule("X.2.1", .mailboxUnknown, refinedBy: anyReason),
        EnhancedRule("X.2.2", .mailboxFull),                         // mailbox full
        EnhancedRule("X.2.3", .messageTooLarge),                     // message length exceeds administrative limit
        EnhancedRule("X.2.*", nil),
        // X.3.x mail system.
        EnhancedRule("X.3.4", .messageTooLarge),                     // message too big for system
        EnhancedRule("X.3.*", nil),
        // X.4.x network and routing. X.4.4 "unable to route" is used both for DNS failures (qmail: no host,
        // no MX) and for connection trouble, so the text decides first.
        EnhancedRule("X.4.4", .network, refinedBy: anyReason),
        EnhancedRule("X.4.5", .rateLimited),                         // mail system congestion
        EnhancedRule("X.4.0", .network, refinedBy: anyReason),
        EnhancedRule("X.4.*", .network),                             // no answer, bad connection, loop, expired
        // X.5.x protocol. 5.5.1 "authentication required" (brief: auth_required) comes through the text.
        EnhancedRule("X.5.3", .rateLimited),                         // too many recipients
        EnhancedRule("X.5.*", nil),
        // X.6.x content.
        EnhancedRule("X.6.0", .contentRejected, refinedBy: anyReason),
        EnhancedRule("X.6.*", .contentRejected),
        // X.7.x security and policy.
        EnhancedRule("X.7.0", .policyOrSpamBlock, refinedBy: anyReason), // other security: auth, TLS, or policy
        EnhancedRule("X.7.1", .policyOrSpamBlock, refinedBy: tlsOrAuth), // delivery not authorized, message refused
        EnhancedRule("X.7.8", .authRequired),                        // RFC 4954: authentication credentials invalid
        EnhancedRule("X.7.9", .authRequired, refinedBy: anyReason),  // RFC 4954: mechanism too weak
        EnhancedRule("X.7.10", .tlsRequired),                        // RFC 5248: encryption needed
        EnhancedRule("X.7.11", .tlsRequired),                        // RFC 4954: encryption required for mechanism
        EnhancedRule("X.7.12", .authRequired),                       // RFC 4954: password transition needed
        EnhancedRule("X.7.13", .mailboxUnknown),                     // RFC 5248: user account disabled
        EnhancedRule("X.7.17", .mailboxUnknown),                     // RFC 7293: mailbox owner has changed
        EnhancedRule("X.7.18", .mailboxUnknown),                     // RFC 7293: domain owner has changed
        EnhancedRule("X.7.30", .tlsRequired),                        // RFC 8689: REQUIRETLS support required
        // 4.7.x: providers defer with 4.7.0/4.7.1/4.7.28 … when a sender goes too fast or has too many
        // complaints; TLS and authentication texts still win.
        EnhancedRule("4.7.*", .rateLimited, refinedBy: anyReason),
        // SPF/DKIM/DMARC (X.7.20–29), reverse DNS, Microsoft's 5.7.5xx/7xx; "5.7.57 … not authenticated" and
        // "5.7.3 STARTTLS is required" are the exceptions the text finds.
        EnhancedRule("5.7.*", .policyOrSpamBlock, refinedBy: tlsOrAuth),
        // 2.x.x is success and X.0.0 says nothing: text and reply code decide.
        EnhancedRule("X.0.*", nil),
    ]

    /// Phrases, lower-case, matched as substrings; first row that matches wins, so the narrow rows come first.
    static let textRules: [(reason: BounceReason, phrases: [String])] = [
        (.tlsRequired, [
            "must issue a starttls command first", "starttls is required", "starttls required", "tls required",
            "tls is required", "requires tls", "require tls", "requiretls", "encryption required", "encryption needed",
            "does not support tls", "not support starttls", "tls must be used", "unencrypted connection",
        ]),
        // Authentication of the message (SPF, DKIM, DMARC) is policy; it must win over "unauthenticated".
        (.policyOrSpamBlock, [
            "dmarc", "spf ", "spf,", "spf.", "spf:", "spf=", "sender policy framework", "dkim", "domainkeys",
        ]),
        (.authRequired, [
            "authentication required", "authentication is required", "auth required", "must authenticate",
            "please authenticate", "unauthenticated senders", "authentication credentials invalid",
            "smtp auth", "not authenticated", "relaying requires authentication", "authentication failed",
        ]),
        // Postfix: "Host not found, try again" is a temporary DNS failure, not a missing domain.
        (.network, ["host not found, try again", "temporary failure in name resolution", "name server timeout"]),
        (.rateLimited, [
            "rate limit", "ratelimit", "rate-limit", "too many connections", "too many messages", "too many recipients",
            "too many concurrent", "temporarily deferred", "tss04", "ts01", "ts02", "ts03", "throttl",
            "exceeded the rate", "sending rate", "receiving mail at a rate", "unusual rate", "relay quota",
            "sending quota", "too many emails", "connection limit", "try again later, closing connection",
        ]),
        (.domainNotFound, [
            "host or domain name not found", "domain not found", "domain does not exist", "no such domain",
            "unrouteable mail domain", "couldn't find any host named", "couldn't find a mail exchanger",
            "no mx record", "mx lookup", "null mx", "nxdomain", "unknown host", "host unknown", "host not found",
            "domain name not found", "no route to domain", "nonexistent domain", "non-existent domain",
        ]),
        (.mailboxUnknown, [
            "the email account that you tried to reach does not exist", "user doesn't have a yahoo.com account",
            "the email account that you tried to reach is disabled", "recipientnotfound", "recipnotfound",
            "recipient not found", "user unknown", "unknown user", "unknown recipient", "no such user",
            "no such mailbox", "no such recipient", "mailbox not found", "invalid recipient", "invalid mailbox",
            "mailbox does not exist", "user does not exist", "address does not exist", "account does not exist",
            "recipient does not exist", "does not exist here", "unknown or illegal user", "unknown or illegal alias",
            "not a valid mailbox", "no mailbox here", "address rejected: user unknown", "account has been disabled",
            "account is disabled", "account disabled", "mailbox disabled", "mailbox is disabled",
            "mailbox unavailable or not local", "is not a valid user", "unknown local part", "address unknown",
            "bad destination mailbox", "account or domain may not exist", "unrouteable address",
            "no longer in use", "mailbox has moved", "user not found", "invalid address",
            "address couldn't be found", "address could not be found",
        ]),
        (.mailboxFull, [
            "mailbox full", "mailbox is full", "mailbox quota", "quota exceeded", "over quota", "overquota",
            "exceeded storage", "disk quota", "storage quota", "mailbox size limit", "user is over", "inbox is full",
            "mail box full", "account is full", "mailfolder is full", "insufficient disk space", "not enough disk space",
            "exceeds the quota", "exceeded its quota", "exceeded the quota",
        ]),
        (.messageTooLarge, [
            "message size exceeds", "message too large", "message is too large", "message too big",
            "message is too big", "exceeds size limit", "size limit", "message length exceeds", "maximum message size",
            "size exceeds", "message exceeds", "line limit exceeded",
        ]),
        (.contentRejected, [
            "virus", "malware", "infected", "content rejected", "message content", "content filter",
            "prohibited attachment", "banned attachment", "attachment not allowed", "content presents a potential",
            "headers too large",
        ]),
        (.network, [
            "connection refused", "connection timed out", "timed out", "no route to host", "network is unreachable",
            "host unreachable", "socket error", "connect to ", "lost connection", "connection reset",
            "all hosts have been failing", "retry timeout exceeded", "message expired", "envelope expired",
            "delivery time expired", "could not connect", "unable to connect", "couldn't connect",
            "did not accept our requests to connect", "wasn't able to establish an smtp connection",
            "network error", "no answer from host", "unable to contact", "dns error",
        ]),
        (.policyOrSpamBlock, [
            "spamhaus", "blocked using", "blacklist", "blocklist", "block list", "black list", "dnsbl", "spamcop",
            "barracuda", "sc-001", "s3150", "s3140", "spam", "blocked", "reputation", "reverse dns", "ptr record",
            "rdns", "no ptr", "access denied", "relay access denied", "relaying denied", "not permitted",
            "not allowed", "policy", "refused", "rejected", "junk", "abuse", "complaint", "unsolicited",
        ]),
    ]

    /// Reply codes that carry a meaning of their own (RFC 5321 §4.2.2/§4.2.3, RFC 4954 §6).
    static let replyCodeRules: [(code: Int, reason: BounceReason)] = [
        (421, .rateLimited),      // service not available: in practice "too many connections, slow down"
        (452, .rateLimited),      // RFC 5321 §4.5.3.1.10: too many recipients (Relay retries these at once)
        (552, .mailboxFull),      // exceeded storage allocation
        (530, .authRequired),     // RFC 4954: authentication required
        (534, .authRequired),     // RFC 4954: authentication mechanism is too weak
        (535, .authRequired),     // RFC 4954: authentication credentials invalid
        (538, .tlsRequired),      // RFC 4954: encryption required for requested authentication mechanism
    ]

    // MARK: - Status codes

    /// An RFC 3463 status code read from text (RelayCore has no dependency on SMTPCore's parser).
    struct Status: Sendable, Hashable {
        let statusClass: Int
        let subject: Int
        let detail: Int

        /// Parses `class.subject.detail` exactly: class 2, 4 or 5; subject and detail of one to three digits.
        init?(_ text: some StringProtocol) {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3,
                  parts.allSatisfy({ part in !part.isEmpty && part.count <= 3 && part.allSatisfy { $0.isASCII && $0.isNumber } }),
                  let c = Int(parts[0]), let s = Int(parts[1]), let d = Int(parts[2]),
                  parts[0].count == 1, c == 2 || c == 4 || c == 5
            else { return nil }
            statusClass = c
            subject = s
            detail = d
        }

        /// A status at the start of `text`, after an optional reply code ("550 5.1.1 …", "5.1.1 …").
        static func leading(in text: String) -> Status? {
            var words = text.split(whereSeparator: { $0 == " " || $0 == "-" }).prefix(2)[...]
            if let first = words.first, first.count == 3, Int(first) != nil { words = words.dropFirst() }
            return words.first.flatMap { Status($0) }
        }
    }
}

extension BounceClassifier {
    /// The classification of a recipient's state or of an event, derived from what is stored (status or event
    /// type, SMTP reply, failure label), so that every view classifies the same way and nothing extra is
    /// stored. Nil when nothing failed (accepted, queued, delivered, suppressed, …).
    public static func classify(outcome: String, reply: DeliveryReply?, failureReason: String?) -> BounceClassification? {
        switch outcome {
        case "bounced", "deferred", "failed":
            break
        default:
            return nil
        }
        if let reply, reply.code >= 400 {
            return classify(reply)
        }
        switch failureReason {
        case "domain_not_found", "null_mx":
            // NXDOMAIN or a null MX (RFC 7505): the domain does not receive mail.
            return BounceClassification(permanent: true, reason: .domainNotFound, type: .hard)
        case "expired":
            return BounceClassification(permanent: true, reason: .other, type: .soft)
        default:
            return networkFailure
        }
    }

    /// The classification of an `events` row. Events store no failure label; a failure without a reply is told
    /// apart by the sentence Relay wrote for it (Deliverer and DeliveryWorker): NXDOMAIN or null MX, or expiry.
    /// Anything else is a network failure. The event log and webhooks both classify through here.
    public static func classify(event type: String, reply: DeliveryReply?, detail: String?) -> BounceClassification? {
        classify(outcome: type, reply: reply, failureReason: detail.flatMap(failureLabel(eventDetail:)))
    }

    static func failureLabel(eventDetail detail: String) -> String? {
        if detail.contains("(NXDOMAIN)") || detail.contains("(null MX") { return "domain_not_found" }
        if detail.contains("expired") { return "expired" }
        return nil
    }
}
