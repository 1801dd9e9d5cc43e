/// Writes header fields into a byte buffer, folding (RFC 5322 §2.2.3) before whitespace so that lines
/// stay within 78 characters where the content allows, and encoding non-ASCII text as RFC 2047
/// encoded words sized to the room left on the line.
///
/// The same writer, with no line limit and no field name, renders single-line values such as
/// ``Mailbox/headerValue()``.
struct HeaderWriter {
    /// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters (excluding CRLF).
    static let preferredLineLength = 78
    /// An encoded word shorter than this is not worth starting at the end of a line: fold first.
    static let minimumEncodedRoom = 24

    var out: [UInt8]
    var lineLength = 0
    let lineLimit: Int
    /// The longest encoded word to write (RFC 2047 §2 allows 75); smaller when the words are
    /// wrapped in other text, such as a quoted parameter value.
    var maxEncodedWordLength = EncodedWords.maxWordLength
    /// False until the first token of the current value; for a bare value the first token gets no space.
    private var valueStarted = false
    private var isField = false

    init(capacity: Int = 0, lineLimit: Int = HeaderWriter.preferredLineLength) {
        out = []
        out.reserveCapacity(capacity)
        self.lineLimit = lineLimit
    }

    // MARK: Fields

    /// Starts a field: writes `Name:`.
    mutating func begin(_ name: String) {
        out.append(utf8: name)
        out.append(ASCII.colon)
        lineLength = name.utf8.count + 1
        valueStarted = false
        isField = true
    }

    /// Ends the current field with CRLF.
    mutating func end() {
        out.append(ASCII.cr)
        out.append(ASCII.lf)
        lineLength = 0
        isField = false
    }

    /// Writes a whole field whose value is a single unbreakable or pre-split ASCII token list.
    mutating func field(_ name: String, tokens: [String]) {
        begin(name)
        for token in tokens { word(Array(token.utf8)) }
        end()
    }

    // MARK: Tokens

    /// Appends `token` after the whitespace run `space` (normally one space). When the line would
    /// exceed the limit, folds first: CRLF goes before the whitespace, which then starts the next line.
    mutating func word(_ token: some Collection<UInt8>, space: some Collection<UInt8> = CollectionOfOne(ASCII.space)) {
        if !valueStarted && !isField {
            valueStarted = true
            out.append(contentsOf: token)
            lineLength += token.count
            return
        }
        valueStarted = true
        let spaceCount = space.count
        if lineLimit != Int.max && lineLength > 0 && lineLength + spaceCount + token.count > lineLimit {
            fold()
        }
        out.append(contentsOf: space)
        out.append(contentsOf: token)
        lineLength += spaceCount + token.count
    }

    /// Inserts a line break; the next token's whitespace starts the continuation line.
    mutating func fold() {
        out.append(ASCII.cr)
        out.append(ASCII.lf)
        lineLength = 0
    }

    /// The width the next `word` would need for its whitespace.
    private func spaceWidth(_ space: some Collection<UInt8>) -> Int {
        (!valueStarted && !isField) ? 0 : space.count
    }

    // MARK: RFC 2047

    /// Appends `text` (UTF-8) as one or more encoded words, each at most 75 characters, never splitting
    /// a UTF-8 sequence (RFC 2047 §5(3)), each sized to the room left on the line.
    mutating func encodedWords(_ text: ArraySlice<UInt8>, space: [UInt8] = [ASCII.space], phrase: Bool) {
        let useBase64 = EncodedWords.prefersBase64(text, phrase: phrase)
        let prefix: [UInt8] = Array((useBase64 ? "=?UTF-8?B?" : "=?UTF-8?Q?").utf8)
        var i = text.startIndex
        var currentSpace = space
        var word: [UInt8] = []
        while i < text.endIndex {
            var room = maxEncodedWordLength
            if lineLimit != Int.max {
                room = lineLimit - lineLength - spaceWidth(currentSpace)
                if room < HeaderWriter.minimumEncodedRoom { room = lineLimit - currentSpace.count }
                room = min(room, maxEncodedWordLength)
            }
            let budget = room - EncodedWords.overhead
            word.removeAll(keepingCapacity: true)
            word.append(contentsOf: prefix)
            var j = i
            if useBase64 {
                let maxRaw = max(3, budget / 4 * 3)
                while j < text.endIndex {
                    let length = min(EncodedWords.sequenceLength(text[j]), text.endIndex - j)
                    if j - i + length > maxRaw && j > i { break }
                    j += length
                }
                Base64.appendUnwrapped(text[i..<j], to: &word)
            } else {
                var used = 0
                while j < text.endIndex {
                    let length = min(EncodedWords.sequenceLength(text[j]), text.endIndex - j)
                    var cost = 0
                    for k in j..<(j + length) { cost += EncodedWords.qCost(text[k], phrase: phrase) }
                    if used + cost > budget && j > i { break }
                    for k in j..<(j + length) { EncodedWords.appendQ(text[k], phrase: phrase, to: &word) }
                    used += cost
                    j += length
                }
            }
            word.append(ASCII.question)
            word.append(ASCII.equals)
            self.word(word, space: currentSpace)
            currentSpace = [ASCII.space]
            i = j
        }
    }

    // MARK: Unstructured text

    /// Writes unstructured text (Subject, extra headers; RFC 5322 §3.2.5). Words that need it —
    /// non-ASCII, control characters, `=?`, or longer than `maxPlainWordLength` — are RFC 2047 encoded,
    /// together with everything between the first and last of them; the rest stays readable.
    /// CR and LF are treated as spaces, so a value can never inject a header.
    mutating func unstructured(_ text: String) {
        var bytes = Array(text.utf8)
        for k in bytes.indices where bytes[k] == ASCII.cr || bytes[k] == ASCII.lf { bytes[k] = ASCII.space }
        // Split into (whitespace before, word) pairs; leading and trailing whitespace is dropped.
        var words: [(space: Range<Int>, word: Range<Int>)] = []
        var i = 0
        let n = bytes.count
        while i < n {
            let spaceStart = i
            while i < n && ASCII.isWhitespace(bytes[i]) { i += 1 }
            let wordStart = i
            while i < n && !ASCII.isWhitespace(bytes[i]) { i += 1 }
            if i > wordStart { words.append((spaceStart..<wordStart, wordStart..<i)) }
        }
        guard !words.isEmpty else { return }
        func needsEncoding(_ r: Range<Int>) -> Bool {
            if r.count > HeaderWriter.maxPlainWordLength { return true }
            for k in r where bytes[k] >= 0x80 || ASCII.isControl(bytes[k]) { return true }
            return EncodedWords.containsEncodedWordOpener(bytes[r])
        }
        let first = words.firstIndex { needsEncoding($0.word) }
        let last = words.lastIndex { needsEncoding($0.word) }
        func spaceBytes(_ index: Int) -> [UInt8] {
            let r = words[index].space
            return (r.isEmpty || index == 0) ? [ASCII.space] : Array(bytes[r])
        }
        var index = 0
        while index < words.count {
            if let first, let last, index == first {
                encodedWords(bytes[words[first].word.lowerBound..<words[last].word.upperBound], space: spaceBytes(index), phrase: false)
                index = last + 1
                continue
            }
            word(bytes[words[index].word], space: spaceBytes(index))
            index += 1
        }
    }

    /// A word longer than this is encoded so that it can be split: no line may exceed 998 octets (RFC 5322 §2.1.1).
    static let maxPlainWordLength = 900

    /// Writes bytes as words split at runs of spaces, each run kept whole as a possible fold point.
    /// Folding inside a quoted-string is allowed: its FWS keeps the space when unfolded (RFC 5322 §3.2.4).
    mutating func spaceSeparated(_ bytes: [UInt8]) {
        var i = 0
        let n = bytes.count
        var first = true
        while i < n {
            let spaceStart = i
            while i < n && bytes[i] == ASCII.space { i += 1 }
            let wordStart = i
            while i < n && bytes[i] != ASCII.space { i += 1 }
            if wordStart == i {
                // Trailing spaces cannot occur here (quoted text ends with a quote); keep them anyway.
                out.append(contentsOf: bytes[spaceStart..<i])
                lineLength += i - spaceStart
                break
            }
            if first && spaceStart == wordStart {
                word(bytes[wordStart..<i])
            } else {
                word(bytes[wordStart..<i], space: spaceStart == wordStart ? [ASCII.space] : Array(bytes[spaceStart..<wordStart]))
            }
            first = false
        }
    }

    // MARK: Addresses

    /// Writes a mailbox: `display-name <addr>` or a bare `addr`, optionally followed by a comma.
    mutating func mailbox(_ mailbox: Mailbox, trailingComma: Bool) {
        let address = Array(mailbox.address.description.utf8)
        guard let name = PhraseText.sanitizedDisplayName(mailbox.displayName) else {
            word(trailingComma ? address + [ASCII.comma] : address)
            return
        }
        let nameBytes = Array(name.utf8)
        if PhraseText.needsEncoding(nameBytes) {
            encodedWords(nameBytes[...], phrase: true)
        } else {
            let text = PhraseText.isPlainPhrase(nameBytes) ? nameBytes : PhraseText.quoted(nameBytes)
            spaceSeparated(text)
        }
        var angle: [UInt8] = [ASCII.lessThan]
        angle += address
        angle.append(ASCII.greaterThan)
        if trailingComma { angle.append(ASCII.comma) }
        word(angle)
    }

    /// Writes an address list, folding between addresses when the next one does not fit.
    mutating func mailboxList(_ list: [Mailbox]) {
        for (index, mailbox) in list.enumerated() {
            if index > 0 && lineLimit != Int.max {
                let estimate = PhraseText.estimatedLength(mailbox) + 1
                if lineLength + 1 + estimate > lineLimit { fold() }
            }
            self.mailbox(mailbox, trailingComma: index < list.count - 1)
        }
    }
}

/// Rules for writing display names (RFC 5322 §3.2.5 phrase).
enum PhraseText {
    /// Control characters become spaces; an empty or all-space name is no name.
    static func sanitizedDisplayName(_ name: String?) -> String? {
        guard let name else { return nil }
        var scalars = String.UnicodeScalarView()
        var sawContent = false
        for s in name.unicodeScalars {
            if s.value < 0x20 || s.value == 0x7F || (s.value >= 0x80 && s.value < 0xA0) || s == "\u{2028}" || s == "\u{2029}" {
                scalars.append(" ")
            } else {
                if s != " " { sawContent = true }
                scalars.append(s)
            }
        }
        return sawContent ? String(scalars) : nil
    }

    /// Non-ASCII names, names containing `=?`, and names with a word too long to fold are written as
    /// encoded words.
    static func needsEncoding(_ bytes: [UInt8]) -> Bool {
        if bytes.contains(where: { $0 >= 0x80 }) || EncodedWords.containsEncodedWordOpener(bytes) { return true }
        var run = 0
        for b in bytes {
            run = b == ASCII.space ? 0 : run + 1
            if run > HeaderWriter.maxPlainWordLength { return true }
        }
        return false
    }

    /// Atoms separated by single spaces: can be written without quotes.
    static func isPlainPhrase(_ bytes: [UInt8]) -> Bool {
        guard let first = bytes.first, let last = bytes.last, first != ASCII.space, last != ASCII.space else { return false }
        var previousSpace = false
        for b in bytes {
            if b == ASCII.space {
                if previousSpace { return false }
                previousSpace = true
            } else {
                previousSpace = false
                if !(ASCII.isAtext(b) || b >= 0x80) { return false }
            }
        }
        return true
    }

    /// A quoted-string with `"` and `\` escaped (RFC 5322 §3.2.4).
    static func quoted(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [ASCII.quote]
        for b in bytes {
            if b == ASCII.quote || b == ASCII.backslash { out.append(ASCII.backslash) }
            out.append(b)
        }
        out.append(ASCII.quote)
        return out
    }

    /// Roughly how long a mailbox will be on one line, to decide whether to fold before it.
    static func estimatedLength(_ mailbox: Mailbox) -> Int {
        let address = mailbox.address.description.utf8.count
        guard let name = sanitizedDisplayName(mailbox.displayName) else { return address }
        let bytes = Array(name.utf8)
        if needsEncoding(bytes) {
            let encoded = Base64.encodedLength(bytes.count)
            let words = max(1, (encoded + 59) / 60)
            return encoded + words * (EncodedWords.overhead + 1) + address + 2
        }
        return bytes.count + 3 + address + 2
    }
}
