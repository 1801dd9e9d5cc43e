import RelayCore
import Testing

/// One real reply line (as providers document them or as found in the bounce corpus) and its verdict.
struct ReplyFixture: Sendable, CustomTestStringConvertible {
    let code: Int?
    let enhanced: String?
    let text: String
    let reason: BounceReason
    let type: BounceType
    let permanent: Bool

    init(_ code: Int?, _ enhanced: String?, _ text: String, _ reason: BounceReason, _ type: BounceType, permanent: Bool? = nil) {
        self.code = code
        self.enhanced = enhanced
        self.text = text
        self.reason = reason
        self.type = type
        self.permanent = permanent ?? (code.map { $0 >= 500 } ?? (enhanced?.hasPrefix("5") ?? false))
    }

    var testDescription: String { "\(code.map(String.init) ?? "-") \(enhanced ?? "-") \(text.prefix(60))" }
}

@Suite struct BounceClassificationTests {
    static let fixtures: [ReplyFixture] = [
        // Gmail (support.google.com/a/answer/3726730).
        ReplyFixture(550, "5.1.1", "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser", .mailboxUnknown, .hard),
        ReplyFixture(550, nil, "The email account that you tried to reach does not exist.", .mailboxUnknown, .hard),
        ReplyFixture(452, "4.2.2", "The email account that you tried to reach is over quota. Please direct the recipient to https://support.google.com/mail/?p=OverQuotaTemp", .mailboxFull, .soft),
        ReplyFixture(552, "5.2.2", "The email account that you tried to reach is over quota and inactive.", .mailboxFull, .soft),
        ReplyFixture(550, "5.2.1", "The email account that you tried to reach is disabled. Learn more at https://support.google.com/mail/?p=DisabledUser", .mailboxUnknown, .hard),
        ReplyFixture(421, "4.7.28", "Our system has detected an unusual rate of unsolicited mail originating from your IP address. To protect our users from spam, mail sent from your IP address has been temporarily rate limited.", .rateLimited, .soft),
        ReplyFixture(550, "5.7.26", "Unauthenticated email from example.jp is not accepted due to domain's DMARC policy. Please contact the administrator of example.jp domain if this was a legitimate mail.", .policyOrSpamBlock, .soft),
        ReplyFixture(550, "5.7.26", "This mail has been blocked because the sender is unauthenticated. Gmail requires all senders to authenticate with either SPF or DKIM.", .policyOrSpamBlock, .soft),
        ReplyFixture(552, "5.2.3", "Your message exceeded Google's message size limits.", .messageTooLarge, .soft),
        ReplyFixture(530, "5.7.0", "Must issue a STARTTLS command first.", .tlsRequired, .soft),
        ReplyFixture(530, "5.7.0", "Authentication Required. Learn more at https://support.google.com/mail/?p=WantAuthError", .authRequired, .soft),
        ReplyFixture(550, "5.7.1", "[192.0.2.1] Our system has detected that this message is likely unsolicited mail.", .policyOrSpamBlock, .soft),
        ReplyFixture(500, nil, "Remote server does not support TLS (state 6).", .tlsRequired, .soft),
        // Microsoft (learn.microsoft.com, Exchange Online NDRs).
        ReplyFixture(550, "5.1.10", "RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup", .mailboxUnknown, .hard),
        ReplyFixture(550, "5.1.1", "RESOLVER.ADR.RecipNotFound; not found", .mailboxUnknown, .hard),
        ReplyFixture(550, "5.7.1", "Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your Internet service provider since part of their network is on our block list (S3150).", .policyOrSpamBlock, .soft),
        ReplyFixture(550, nil, "SC-001 (BAY004-MC1F31) Unfortunately, messages from 192.0.2.1 weren't sent. Please contact your Internet service provider. You can tell them that Hotmail does not relay dial-up mail servers.", .policyOrSpamBlock, .soft),
        ReplyFixture(421, "4.7.650", "The mail server [192.0.2.1] has been temporarily rate limited due to IP reputation.", .rateLimited, .soft),
        ReplyFixture(550, "5.7.509", "Access denied, sending domain [EMAIL.EXAMPLE.JP] does not pass DMARC verification and has a DMARC policy of reject.", .policyOrSpamBlock, .soft),
        ReplyFixture(550, "5.4.316", "Message expired, connection refused(Socket error code 10061)", .network, .soft),
        ReplyFixture(554, "5.4.4", "SMTPSEND.DNS.NonExistentDomain; nonexistent domain", .domainNotFound, .hard),
        // Yahoo (senders.yahooinc.com/smtp-error-codes).
        ReplyFixture(554, nil, "delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] - mta1234.mail.bf1.yahoo.com", .mailboxUnknown, .hard),
        ReplyFixture(421, "4.7.0", "[TSS04] Messages from 192.0.2.25 temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes", .rateLimited, .soft),
        ReplyFixture(554, "5.7.9", "Message not accepted for policy reasons. See https://postmaster.yahooinc.com/error-codes", .policyOrSpamBlock, .soft),
        // Block lists and policy.
        ReplyFixture(554, "5.7.1", "Service unavailable; Client host [192.0.2.49] blocked using cbl.abuseat.org (state 13).", .policyOrSpamBlock, .soft),
        ReplyFixture(550, nil, "5.7.1 Service unavailable; client [192.0.2.1] blocked using zen.spamhaus.org", .policyOrSpamBlock, .soft),
        ReplyFixture(554, "5.7.1", "<user@example.com>: Relay access denied", .policyOrSpamBlock, .soft),
        ReplyFixture(450, "4.7.1", "Client host rejected: cannot find your hostname, [192.0.2.1]", .policyOrSpamBlock, .soft),
        ReplyFixture(550, "5.7.25", "<blocked@libsisimai.net>: Recipient address rejected: Reverse DNS validation failed", .policyOrSpamBlock, .soft),
        ReplyFixture(550, nil, "Bad SPF records for [example.org:192.0.2.2], see http://spf.pobox.com/", .policyOrSpamBlock, .soft),
        ReplyFixture(550, "5.1.8", "Sender address rejected", .policyOrSpamBlock, .soft),
        // Postfix, Exim, Sendmail and qmail wording.
        ReplyFixture(550, "5.1.1", "<userunknown@libsisimai.net>: Recipient address rejected: User unknown in virtual mailbox table", .mailboxUnknown, .hard),
        ReplyFixture(550, nil, "Unknown user kijitora@example.ne.jp", .mailboxUnknown, .hard),
        ReplyFixture(553, "5.1.1", "unknown or illegal alias: kijitora@icloud.example.com", .mailboxUnknown, .hard),
        ReplyFixture(552, "5.2.2", "<mailboxfull@libsisimai.net>: Recipient address rejected: Mailbox full", .mailboxFull, .soft),
        ReplyFixture(552, nil, "Error: disk quota exceeded", .mailboxFull, .soft),
        ReplyFixture(452, "4.2.2", "Mailbox full", .mailboxFull, .soft),
        ReplyFixture(552, "5.3.4", "Message size exceeds fixed limit", .messageTooLarge, .soft),
        ReplyFixture(554, nil, "Message size exceeds fixed maximum message size", .messageTooLarge, .soft),
        ReplyFixture(550, "5.1.2", "Host unknown", .domainNotFound, .hard),
        ReplyFixture(556, "5.1.10", "Recipient address has null MX", .domainNotFound, .hard),
        ReplyFixture(nil, "5.1.2", "Sorry, I couldn't find any host named cx.libsisimai.com. (#5.1.2)", .domainNotFound, .hard),
        ReplyFixture(nil, "5.4.4", "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", .domainNotFound, .hard),
        ReplyFixture(nil, nil, "Name service error for domain example.com: Host not found, try again", .network, .soft),
        ReplyFixture(530, "5.7.0", "Authentication required", .authRequired, .soft),
        ReplyFixture(530, "5.5.1", "Authentication Required. Learn more at https://support.google.com/mail/?p=WantAuthError", .authRequired, .soft),
        ReplyFixture(451, "5.7.3", "STARTTLS is required to send mail", .tlsRequired, .soft),
        ReplyFixture(530, "5.7.57", "SMTP; Client was not authenticated to send anonymous mail during MAIL FROM", .authRequired, .soft),
        ReplyFixture(550, "5.2.1", "The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered.", .rateLimited, .soft),
        ReplyFixture(535, "5.7.8", "Error: authentication failed: authentication failure", .authRequired, .soft),
        ReplyFixture(538, "5.7.11", "Encryption required for requested authentication mechanism", .tlsRequired, .soft),
        ReplyFixture(550, "5.7.10", "Encryption needed", .tlsRequired, .soft),
        ReplyFixture(550, nil, "Unauthenticated senders not allowed", .authRequired, .soft),
        ReplyFixture(554, "5.6.0", "Message content rejected", .contentRejected, .soft),
        ReplyFixture(550, "5.0.0", "Virus Detected; Content Rejected", .contentRejected, .soft),
        ReplyFixture(550, "5.1.6", "<kijitora@example.com>... User has moved; please try <kijitora@example.org>", .mailboxUnknown, .hard),
        ReplyFixture(421, "4.4.2", "mx.example.com Error: timeout exceeded", .network, .soft),
        ReplyFixture(451, "4.3.0", "Temporary lookup failure", .other, .soft),
        ReplyFixture(550, nil, "Requested action not taken: mailbox unavailable", .other, .soft),
        ReplyFixture(421, nil, "Service not available, closing transmission channel", .rateLimited, .soft),
        ReplyFixture(452, "4.5.3", "Error: too many recipients", .rateLimited, .soft),
        ReplyFixture(552, nil, "Too many recipients", .rateLimited, .soft),
        // No reply at all: network, soft.
        ReplyFixture(nil, nil, "connect to mx.example.com[192.0.2.1]:25: Connection refused", .network, .soft),
        ReplyFixture(nil, nil, "", .network, .soft),
    ]

    @Test(arguments: fixtures)
    func classifies(_ fixture: ReplyFixture) {
        let result = BounceClassifier.classify(code: fixture.code, enhanced: fixture.enhanced, text: fixture.text)
        #expect(result.reason == fixture.reason)
        #expect(result.type == fixture.type)
        #expect(result.permanent == fixture.permanent)
    }

    @Test func theFixtureTableIsLargeAndCoversEveryReason() {
        #expect(Self.fixtures.count >= 40)
        #expect(Set(Self.fixtures.map(\.reason)) == Set(BounceReason.allCases))
    }

    @Test func permanenceFollowsTheCodeThenTheStatus() {
        #expect(BounceClassifier.classify(code: 550, enhanced: "4.4.7", text: "").permanent)
        #expect(!BounceClassifier.classify(code: 450, enhanced: "5.1.1", text: "").permanent)
        #expect(BounceClassifier.classify(code: nil, enhanced: "5.1.1", text: "").permanent)
        #expect(!BounceClassifier.classify(code: nil, enhanced: "4.2.2", text: "").permanent)
        // A status written at the start of the text counts when none is given.
        #expect(BounceClassifier.classify(code: nil, enhanced: nil, text: "5.1.1 user unknown") ==
                BounceClassification(permanent: true, reason: .mailboxUnknown, type: .hard))
    }

    @Test func onlyPermanentFailuresOfTheAddressAreHard() {
        for reason in BounceReason.allCases {
            #expect(BounceClassifier.type(permanent: false, reason: reason) == .soft)
            let hard = reason == .mailboxUnknown || reason == .domainNotFound
            #expect(BounceClassifier.type(permanent: true, reason: reason) == (hard ? .hard : .soft))
        }
    }

    @Test func aDeliveryReplyClassifiesLikeItsParts() {
        let reply = DeliveryReply(code: 550, enhanced: "5.1.1", text: "user unknown")
        #expect(BounceClassifier.classify(reply) == BounceClassification(permanent: true, reason: .mailboxUnknown, type: .hard))
        #expect(BounceClassifier.networkFailure == BounceClassification(permanent: false, reason: .network, type: .soft))
    }

    @Test func reasonLabelsAreStable() {
        #expect(BounceReason.allCases.map(\.rawValue) == [
            "mailbox_unknown", "mailbox_full", "domain_not_found", "policy_or_spam_block", "rate_limited",
            "message_too_large", "tls_required", "auth_required", "content_rejected", "network", "other",
        ])
    }

    @Test func outcomesAreClassifiedFromWhatIsStored() {
        let unknown = DeliveryReply(code: 550, enhanced: "5.1.1", text: "User unknown")
        #expect(BounceClassifier.classify(outcome: "bounced", reply: unknown, failureReason: nil)?.type == .hard)
        #expect(BounceClassifier.classify(outcome: "delivered", reply: DeliveryReply(code: 250, enhanced: nil, text: "ok"),
                                          failureReason: nil) == nil)
        #expect(BounceClassifier.classify(outcome: "accepted", reply: nil, failureReason: nil) == nil)
        #expect(BounceClassifier.classify(outcome: "suppressed", reply: nil, failureReason: "hard_bounce") == nil)
        #expect(BounceClassifier.classify(outcome: "deferred", reply: nil, failureReason: nil) == BounceClassifier.networkFailure)
        let nxdomain = BounceClassifier.classify(outcome: "failed", reply: nil, failureReason: "domain_not_found")
        #expect(nxdomain?.reason == .domainNotFound && nxdomain?.type == .hard)
        let expired = BounceClassifier.classify(outcome: "failed", reply: DeliveryReply(code: 451, enhanced: "4.3.0", text: "later"),
                                                failureReason: "expired")
        #expect(expired?.type == .soft)
    }
}
