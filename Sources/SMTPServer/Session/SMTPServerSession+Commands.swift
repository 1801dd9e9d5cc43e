import SMTPCore

// Each verb: check (is it allowed now? are its arguments acceptable?), then proceed (apply it), as in
// OpenSMTPD's smtp_session.c.
extension SMTPServerSession {
    /// One command line in the command state.
    mutating func command(_ line: [UInt8]) -> Action {
        let parsed: SMTPCommand
        do {
            parsed = try SMTPCommand.parse(line)
        } catch {
            return parseFailed(line, error)
        }
        // Graceful shutdown: new commands get 421 (QUIT still gets its 221).
        if shutdownPending, parsed != .quit {
            state = .closed
            return .replyAndClose(Replies.shutdown(configuration.hostname))
        }
        switch parsed {
        case .ehlo(let domain): return greet(domain, extended: true)
        case .helo(let domain): return greet(domain, extended: false)
        case .startTLS: return startTLS()
        case .auth(let mechanism, let initialResponse): return auth(mechanism: mechanism, initialResponse: initialResponse)
        case .mailFrom(let path, let parameters): return mail(path, parameters)
        case .rcptTo(let path, let parameters): return rcpt(path, parameters)
        case .data: return data()
        case .rset:
            transaction = nil
            return .reply(Replies.ok)
        case .noop:
            return .reply(Replies.ok)
        case .vrfy:
            // RFC 5321 §3.5.3: 252 when the server will not verify; never confirms a mailbox.
            return .reply(Replies.vrfy)
        case .quit:
            state = .closed
            return .replyAndClose(Replies.quit(configuration.hostname))
        case .bdat:
            // CHUNKING is not advertised.
            return refuse(Replies.notImplemented)
        }
    }

    /// Maps a parse failure to its reply (RFC 5321 §4.2.4: 500 unknown verb, 501 bad arguments). HELP and
    /// EXPN, which the shared grammar does not model, are recognised here by their verb alone.
    private mutating func parseFailed(_ line: [UInt8], _ error: SMTPCommandParseError) -> Action {
        let verb = Self.verb(of: line)
        if shutdownPending, verb != "QUIT" {
            state = .closed
            return .replyAndClose(Replies.shutdown(configuration.hostname))
        }
        switch error.code {
        case .unrecognizedCommand:
            if verb == "HELP" { return .reply(Replies.help) }
            if verb == "EXPN" { return refuse(Replies.notImplemented) }
            return refuse(Replies.unrecognized)
        case .invalidCharacters:
            return refuse(Replies.invalidCharacters(error.reason))
        default:
            // Path errors get the address-syntax codes of RFC 3463 (5.1.7 sender, 5.1.3 recipient).
            let isPathError = error.reason.contains("path") && !error.reason.contains("requires FROM:")
                && !error.reason.contains("requires TO:")
            if isPathError, verb == "MAIL" { return refuse(Replies.badSenderSyntax(error.reason)) }
            if isPathError, verb == "RCPT" { return refuse(Replies.badRecipientSyntax(error.reason)) }
            return refuse(Replies.syntax(error.reason))
        }
    }

    /// The first word of a line, upper case (ASCII only).
    static func verb(of line: [UInt8]) -> String {
        let word = line.prefix { $0 != UInt8(ascii: " ") && $0 != 0x09 }.prefix(16)
        return String(decoding: word, as: UTF8.self).uppercased()
    }

    // MARK: EHLO / HELO

    /// RFC 5321 §4.1.4: EHLO or HELO also resets the transaction; authentication and TLS are kept.
    private mutating func greet(_ domain: String, extended: Bool) -> Action {
        transaction = nil
        facts.heloName = domain
        facts.extended = extended
        guard extended else { return .reply(Replies.helo(configuration.hostname)) }
        var lines = [
            configuration.hostname,
            "PIPELINING",
            "SIZE \(configuration.maximumMessageSize)",
            "8BITMIME",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
        ]
        if configuration.offersSTARTTLS, !facts.tlsActive { lines.append("STARTTLS") }
        if !isInbound, facts.tlsActive || !configuration.requiresTLSForAuth {
            lines.append("AUTH PLAIN LOGIN")
        }
        return .reply(SMTPReply(code: 250, lines: lines))
    }

    // MARK: STARTTLS (RFC 3207)

    private mutating func startTLS() -> Action {
        guard configuration.offersSTARTTLS else { return refuse(Replies.notImplemented) }
        guard !facts.tlsActive else { return refuse(Replies.tlsAlreadyActive) }
        guard facts.heloName != nil else { return refuse(Replies.sendHeloFirst) }
        guard transaction == nil else { return refuse(Replies.startTLSInTransaction) }
        guard facts.principal == nil || facts.trustedByAddress else { return refuse(Replies.startTLSAfterAuth) }
        state = .startingTLS
        return .replyAndStartTLS(Replies.readyToStartTLS)
    }

    // MARK: MAIL FROM

    private mutating func mail(_ path: String, _ parameters: [SMTPParameter]) -> Action {
        guard let principal = facts.principal else { return refuse(Replies.authRequired) }
        guard transaction == nil else { return refuse(Replies.nestedMail) }
        var pending = Transaction(mailFrom: path)
        var seen: Set<String> = []
        for parameter in parameters {
            guard seen.insert(parameter.keyword).inserted else {
                return refuse(Replies.badParameterValue(parameter.description))
            }
            switch parameter.keyword {
            case "SIZE":
                // RFC 1870: SIZE=<decimal>; refuse at MAIL when the declared size is over the limit.
                guard let value = parameter.value, (1...18).contains(value.utf8.count),
                      value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                      let size = Int(value)
                else { return refuse(Replies.badParameterValue(parameter.description)) }
                if size > configuration.maximumMessageSize {
                    return .reply(Replies.sizeExceeded(configuration.maximumMessageSize))
                }
            case "BODY":
                // RFC 6152: 7BIT or 8BITMIME; BINARYMIME is not offered.
                switch parameter.value?.uppercased() {
                case "7BIT": pending.eightBitMIME = false
                case "8BITMIME": pending.eightBitMIME = true
                default: return refuse(Replies.badParameterValue(parameter.description))
                }
            case "SMTPUTF8":
                // RFC 6531 §3.4: no value.
                guard parameter.value == nil else { return refuse(Replies.badParameterValue(parameter.description)) }
                pending.smtpUTF8 = true
            case "AUTH":
                // RFC 4954 §5: the AUTH= parameter is accepted and ignored (Relay trusts only its own AUTH).
                break
            default:
                return refuse(Replies.unsupportedParameter(parameter.keyword))
            }
        }
        if !path.isEmpty {
            guard Self.isMailbox(path) else { return refuse(Replies.badSenderSyntax("not a mailbox <local@domain>")) }
            // RFC 6531 §3.5: a non-ASCII address needs SMTPUTF8.
            if !pending.smtpUTF8, Self.isNonASCII(path) { return refuse(Replies.nonASCIIWithoutSMTPUTF8) }
        }
        state = .checkingSender(pending)
        // An MX takes mail from anyone (the null sender of a DSN above all); only its recipients are checked.
        if isInbound { return senderChecked(.accepted) }
        return .checkSender(principal: principal, address: path)
    }

    // MARK: RCPT TO

    private mutating func rcpt(_ path: String, _ parameters: [SMTPParameter]) -> Action {
        guard facts.principal != nil else { return refuse(Replies.authRequired) }
        guard var current = transaction else { return refuse(Replies.needMail) }
        if let parameter = parameters.first {
            // No RCPT extension (DSN's NOTIFY/ORCPT) is offered.
            return refuse(Replies.unsupportedParameter(parameter.keyword))
        }
        guard Self.isMailbox(path) else { return refuse(Replies.badRecipientSyntax("not a mailbox <local@domain>")) }
        if !current.smtpUTF8, Self.isNonASCII(path) { return refuse(Replies.nonASCIIWithoutSMTPUTF8) }
        // RFC 5321 §4.5.3.1.10: 452 for each recipient past the limit; the client sends them in another
        // transaction. Not counted as an error.
        if case .inbound(let acceptsRecipient) = configuration.mode, !acceptsRecipient(path) {
            return refuse(Replies.notOurAddress(path))
        }
        let limit = max(SMTPServerConfiguration.minimumRecipientLimit, configuration.maximumRecipients)
        guard current.recipients.count < limit else { return .reply(Replies.tooManyRecipients) }
        transaction = nil
        current.recipients.append(path)
        transaction = current
        return .reply(Replies.recipientOK(path))
    }

    // MARK: DATA

    private mutating func data() -> Action {
        guard facts.principal != nil else { return refuse(Replies.authRequired) }
        guard let current = transaction else { return refuse(Replies.needMail) }
        guard !current.recipients.isEmpty else { return refuse(Replies.noRecipients) }
        state = .receivingData(SMTPDataDecoder(
            maximumLineLength: configuration.maximumLineLength,
            maximumSize: configuration.maximumMessageSize
        ))
        return .reply(Replies.startData)
    }

    // MARK: Address checks

    /// True for `local@domain` (RFC 5321 §4.1.2 `Mailbox`): the local part a dot-atom (RFC 5322 atext, or UTF-8
    /// for RFC 6531) or a quoted string, the domain a dot-separated list of labels (letters, digits, hyphens,
    /// UTF-8) or an address literal `[…]`. The parser has already refused control characters, and spaces and
    /// angle brackets outside quotes; this also refuses leftovers such as `@b:c@d` that a source route can leave.
    static func isMailbox(_ address: String) -> Bool {
        let bytes = Array(address.utf8)
        guard let at = bytes.lastIndex(of: UInt8(ascii: "@")), at > 0, at < bytes.count - 1 else { return false }
        guard isLocalPart(bytes[..<at]) else { return false }
        let domain = bytes[(at + 1)...]
        if domain.first == UInt8(ascii: "[") {
            return domain.last == UInt8(ascii: "]") && domain.count > 2
                && !domain.dropFirst().dropLast().contains(where: { $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]") })
        }
        var labelLength = 0
        for byte in domain {
            if byte == UInt8(ascii: ".") {
                guard labelLength > 0 else { return false }
                labelLength = 0
                continue
            }
            let allowed = byte >= 0x80
                || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-")
            guard allowed else { return false }
            labelLength += 1
        }
        return labelLength > 0
    }

    private static func isLocalPart(_ local: ArraySlice<UInt8>) -> Bool {
        if local.first == UInt8(ascii: "\"") {
            // A quoted string; the parser checked that quotes and escapes are balanced.
            return local.count >= 2 && local.last == UInt8(ascii: "\"")
        }
        guard local.first != UInt8(ascii: "."), local.last != UInt8(ascii: ".") else { return false }
        var previous: UInt8 = 0
        for byte in local {
            if byte == UInt8(ascii: "."), previous == UInt8(ascii: ".") { return false }
            guard byte >= 0x80 || byte == UInt8(ascii: ".") || isAtext(byte) else { return false }
            previous = byte
        }
        return true
    }

    /// RFC 5322 §3.2.3 atext.
    private static func isAtext(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
            || Array("!#$%&'*+-/=?^_`{|}~".utf8).contains(byte)
    }

    static func isNonASCII(_ text: String) -> Bool {
        text.utf8.contains { $0 >= 0x80 }
    }
}
