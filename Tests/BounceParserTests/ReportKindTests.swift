import BounceParser
import RelayCore
import Testing

/// Non-bounces stay non-bounces; complaint reports name the right address; the fields beyond the reference
/// answers (original Message-ID, envelope sender, feedback type, action) are read.
@Suite struct ReportKindTests {
    @Test(arguments: ["is-not-bounce-01.eml", "is-not-bounce-02.eml", "rb-issue-368-bug.eml",
                      "rfc3834-01.eml", "rfc3834-02.eml", "rfc3834-04.eml", "rfc3834-05.eml"])
    func isNotABounce(_ file: String) {
        let report = BounceParser.parse(Corpus.sample(file))
        #expect(report.kind != .bounce)
        #expect(report.recipients.isEmpty)
    }

    @Test(arguments: ["rfc3834-01.eml", "rfc3834-02.eml", "rfc3834-04.eml", "rfc3834-05.eml", "rb-issue-368-bug.eml"])
    func autoReplies(_ file: String) {
        #expect(BounceParser.parse(Corpus.sample(file)).kind == .autoReply)
    }

    @Test(arguments: ["is-not-bounce-01.eml", "is-not-bounce-02.eml"])
    func ordinaryMessages(_ file: String) {
        #expect(BounceParser.parse(Corpus.sample(file)).kind == .notABounce)
    }

    /// Every complaint sample, with the complained-about addresses and the feedback type.
    @Test(arguments: [
        ("arf-01.eml", ["redacted@example.net"], "abuse"),
        ("arf-02.eml", ["this-local-part-does-not-exist-on-yahoo@yahoo.com"], "abuse"),
        // The original's To is "<Undisclosed Recipients>": there is no address to name.
        ("arf-11.eml", [], "abuse"),
        ("arf-14.eml", ["kijitora@y.example.com"], "abuse"),
        ("arf-16.eml", ["kijitora@example.com", "sironeko@example.com", "mikeneko@example.com", "sabatora@example.com",
                        "sirokiji@example.org", "kuroneko@example.com", "sabineko@example.com"], "abuse"),
        ("arf-17.eml", ["kijitora@example.com", "sabatora@example.net"], "abuse"),
        ("arf-19.eml", ["kijitora@example.org"], "auth-failure"),
        ("arf-20.eml", ["kijitora@example.org"], "auth-failure"),
        ("arf-22.eml", ["kijitora@example.com"], "abuse"),
        ("arf-23.eml", ["kijitora@example.com"], "abuse"),
        ("arf-25.eml", ["hashed@example.com"], "abuse"),
        ("arf-26.eml", ["example@icloud.com"], "unsubscribe"),
        ("lhost-amazonses-11.eml", ["complaint@simulator.amazonses.com"], "abuse"),
    ])
    func complaints(_ file: String, _ addresses: [String], _ feedbackType: String) {
        let report = BounceParser.parse(Corpus.sample(file))
        #expect(report.kind == .complaint)
        #expect(report.recipients.map(\.address) == addresses)
        #expect(report.feedbackType == feedbackType)
    }

    @Test func complaintKeepsTheOriginalMessageAndSender() {
        let report = BounceParser.parse(Corpus.sample("arf-14.eml"))
        #expect(report.originalMessageID == "2222222222222222-00000000-eeee-eeee-ffff-222222222222-111111@email.amazonses.com")
        #expect(report.originalEnvelopeSender == "2222222222222222-22222222-0000-eeee-ffff-222222222222-222222@amazonses.com")
    }

    @Test func successNoticesAreNotBounces() {
        for file in ["rfc3464-28.eml", "lhost-amazonses-13.eml"] {
            let report = BounceParser.parse(Corpus.sample(file))
            #expect(report.kind == .notABounce, "\(file)")
            #expect(report.recipients.isEmpty)
        }
    }

    @Test func aReportOfDelaysOnlyIsASoftBounce() {
        for file in ["rfc3464-34.eml", "lhost-exim-38.eml", "lhost-gmail-08.eml", "lhost-opensmtpd-13.eml", "lhost-opensmtpd-04.eml"] {
            let report = BounceParser.parse(Corpus.sample(file))
            #expect(report.kind == .bounce, "\(file)")
            #expect(!report.recipients.isEmpty, "\(file)")
            for recipient in report.recipients {
                #expect(recipient.action == "delayed", "\(file)")
                #expect(!recipient.classification.permanent, "\(file)")
                #expect(recipient.classification.type == .soft, "\(file)")
            }
        }
    }

    @Test func readsTheDSNFieldsOfAPostfixBounce() {
        let report = BounceParser.parse(Corpus.sample("lhost-postfix-02.eml"))
        #expect(report.kind == .bounce)
        let first = report.recipients.first
        #expect(first?.action == "failed")
        #expect(first?.status == "5.2.1")
        #expect(first?.replyCode == 550)
        #expect(first?.classification.type == .hard)
    }

    @Test func takesThePreciseStatusFromTheDiagnosticWhenTheDSNIsVague() {
        // Exim: "Status: 5.0.0" over "550 5.7.1 Connections not accepted …".
        let exim = BounceParser.parse(Corpus.sample("lhost-exim-43.eml")).recipients.first
        #expect(exim?.status == "5.7.1")
        #expect(exim?.classification.reason == .policyOrSpamBlock)
        // OpenSMTPD: "Status: 5.0.0" and no Diagnostic-Code; the text has "550 5.7.26 …".
        let openSMTPD = BounceParser.parse(Corpus.sample("lhost-opensmtpd-11.eml")).recipients.first
        #expect(openSMTPD?.status == "5.7.26")
        #expect(openSMTPD?.replyCode == 550)
    }

    @Test func findsTheOriginalMessage() {
        let dsn = BounceParser.parse(Corpus.sample("rfc3464-01.eml"))
        #expect(dsn.originalMessageID == "E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org")
        #expect(dsn.originalEnvelopeSender == "kijitora@example.org")
        let qmail = BounceParser.parse(Corpus.sample("lhost-qmail-16.eml"))
        #expect(qmail.originalMessageID == "20240624090001.44587.qmail@nq.example.jp")
        #expect(qmail.originalEnvelopeSender == "kijitora@nq.example.jp")
        let exim = BounceParser.parse(Corpus.sample("lhost-exim-08.eml"))
        #expect(exim.originalEnvelopeSender == "shironeko@email.example.com")
        let postfix = BounceParser.parse(Corpus.sample("lhost-postfix-02.eml"))
        #expect(postfix.originalEnvelopeSender == "kijitora@example.jp")
    }

    @Test func readsAmazonSESJSONNotifications() {
        let report = BounceParser.parse(Corpus.sample("lhost-amazonses-10.eml"))
        #expect(report.kind == .bounce)
        #expect(report.recipients.map(\.address) == ["bounce@simulator.amazonses.com"])
        #expect(report.recipients.first?.status == "5.1.1")
        #expect(report.recipients.first?.replyCode == 550)
        #expect(report.recipients.first?.classification.type == .hard)
        #expect(report.originalEnvelopeSender == "kijitora@neko.example.org")
    }

    @Test func namesRecipientsOfPipesThroughXFailedRecipients() {
        #expect(BounceParser.parse(Corpus.sample("lhost-exim-07.eml")).recipients.map(\.address) == ["shiba@example.com"])
        #expect(BounceParser.parse(Corpus.sample("lhost-exim-53.eml")).recipients.map(\.address) == ["kijitora@example.com"])
        #expect(BounceParser.parse(Corpus.sample("lhost-exim-44.eml")).recipients.map(\.address) == ["kijitora@example.com"])
    }
}
