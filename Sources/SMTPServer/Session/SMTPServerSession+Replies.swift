import SMTPCore

extension SMTPServerSession {
    /// Every reply the session writes, in one place so that codes, enhanced codes (RFC 3463) and texts stay
    /// consistent. The EHLO, greeting and 354 replies carry no enhanced code (RFC 2034 §3).
    enum Replies {
        static func make(_ code: Int, _ enhanced: (Int, Int, Int)?, _ text: String) -> SMTPReply {
            let enhancedCode = enhanced.flatMap {
                EnhancedStatusCode(statusClass: $0.0, subject: $0.1, detail: $0.2)
            }
            return SMTPReply(code: code, enhancedCode: enhancedCode, text: text)
        }

        // Session
        static func greeting(_ hostname: String) -> SMTPReply { make(220, nil, "\(hostname) ESMTP Relay") }
        static func helo(_ hostname: String) -> SMTPReply { make(250, nil, hostname) }
        static func quit(_ hostname: String) -> SMTPReply { make(221, (2, 0, 0), "\(hostname) closing connection") }
        static let ok = make(250, (2, 0, 0), "OK")
        static let vrfy = make(252, (2, 5, 0), "Cannot VRFY user, but will accept message and attempt delivery")
        static let help = make(214, (2, 0, 0), "See RFC 5321 and RFC 6409; commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP VRFY QUIT")
        static func timeout(_ hostname: String) -> SMTPReply {
            make(421, (4, 4, 2), "\(hostname) Timeout exceeded, closing connection")
        }
        static func shutdown(_ hostname: String) -> SMTPReply {
            make(421, (4, 3, 2), "\(hostname) Service shutting down, closing connection")
        }
        static let tooManyErrors = make(421, (4, 7, 0), "Too many errors, closing connection")

        // Errors in sequence or syntax
        static let unrecognized = make(500, (5, 5, 1), "Command unrecognized")
        static let lineTooLong = make(500, (5, 5, 2), "Line too long (limit 512 octets including CRLF)")
        static func syntax(_ reason: String) -> SMTPReply { make(501, (5, 5, 4), "Syntax error: \(reason)") }
        static func invalidCharacters(_ reason: String) -> SMTPReply { make(501, (5, 5, 2), "Syntax error: \(reason)") }
        static let notImplemented = make(502, (5, 5, 1), "Command not implemented")
        static let sendHeloFirst = make(503, (5, 5, 1), "Send EHLO first")
        static let badSequence = make(503, (5, 5, 1), "Bad sequence of commands")

        // STARTTLS (RFC 3207)
        static let readyToStartTLS = make(220, (2, 0, 0), "Ready to start TLS")
        static let tlsAlreadyActive = make(503, (5, 5, 1), "TLS already active")
        static let startTLSInTransaction = make(503, (5, 5, 1), "STARTTLS not allowed during a mail transaction")
        static let startTLSAfterAuth = make(503, (5, 5, 1), "STARTTLS not allowed after AUTH")

        // AUTH (RFC 4954)
        static let authChallengeEmpty = make(334, nil, "")
        static let authUsername = make(334, nil, "VXNlcm5hbWU6")  // "Username:"
        static let authPassword = make(334, nil, "UGFzc3dvcmQ6")  // "Password:"
        static let authSucceeded = make(235, (2, 7, 0), "Authentication successful")
        static let authFailed = make(535, (5, 7, 8), "Authentication credentials invalid")
        static let authLockedOut = make(421, (4, 7, 0), "Too many failed authentication attempts, closing connection")
        static let authTemporaryFailure = make(454, (4, 7, 0), "Temporary authentication failure, try again later")
        static let authNeedsTLS = make(538, (5, 7, 11), "Encryption required for requested authentication mechanism")
        static let authAlready = make(503, (5, 5, 1), "Already authenticated")
        static let authInTransaction = make(503, (5, 5, 1), "AUTH not allowed during a mail transaction")
        static let authUnknownMechanism = make(504, (5, 5, 4), "Unrecognized authentication mechanism (use PLAIN or LOGIN)")
        static let authCancelled = make(501, (5, 7, 0), "Authentication cancelled")
        static let authBadBase64 = make(501, (5, 5, 2), "Cannot decode base64 response")
        static let authMalformed = make(501, (5, 5, 2), "Malformed authentication response")
        static let authRequired = make(530, (5, 7, 0), "Authentication required")

        // Mail transaction
        static func senderOK(_ address: String) -> SMTPReply { make(250, (2, 1, 0), "Sender <\(address)> OK") }
        static func recipientOK(_ address: String) -> SMTPReply { make(250, (2, 1, 5), "Recipient <\(address)> OK") }
        static let nestedMail = make(503, (5, 5, 1), "Sender already specified")
        static func notOurAddress(_ address: String) -> SMTPReply {
            make(550, (5, 7, 1), "<\(address)>: relay access denied (this server accepts only bounce reports)")
        }
        static let needMail = make(503, (5, 5, 1), "Need MAIL command first")
        static let noRecipients = make(554, (5, 5, 1), "No valid recipients")
        static let tooManyRecipients = make(452, (4, 5, 3), "Too many recipients")
        static func badSenderSyntax(_ reason: String) -> SMTPReply { make(501, (5, 1, 7), "Bad sender address syntax: \(reason)") }
        static func badRecipientSyntax(_ reason: String) -> SMTPReply { make(501, (5, 1, 3), "Bad recipient address syntax: \(reason)") }
        static let nonASCIIWithoutSMTPUTF8 = make(553, (5, 6, 7), "Non-ASCII address requires the SMTPUTF8 parameter on MAIL FROM")
        static func unsupportedParameter(_ keyword: String) -> SMTPReply {
            make(555, (5, 5, 4), "Unsupported parameter \(keyword)")
        }
        static func badParameterValue(_ parameter: String) -> SMTPReply {
            make(501, (5, 5, 4), "Invalid parameter value \(parameter)")
        }
        static func sizeExceeded(_ maximum: Int) -> SMTPReply {
            make(552, (5, 3, 4), "Message size exceeds fixed maximum message size of \(maximum) octets")
        }
        static let startData = make(354, nil, "End data with <CR><LF>.<CR><LF>")

        // End of data
        static let bareCarriageReturn = make(550, (5, 6, 0), "Message refused: bare CR in data (lines must end with CRLF)")
        static let bareLineFeed = make(550, (5, 6, 0), "Message refused: bare LF in data (lines must end with CRLF)")
        static func lineTooLongInData(_ maximum: Int) -> SMTPReply {
            make(550, (5, 6, 0), "Message refused: line longer than \(maximum) octets in data")
        }
        static let nulInData = make(550, (5, 6, 0), "Message refused: NUL character in data")
    }
}
