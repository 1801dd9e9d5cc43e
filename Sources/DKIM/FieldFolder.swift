/// Writes a header field as folded lines of at most `limit` characters where the content allows
/// (RFC 5322 §2.1.1 recommends 78), breaking only where FWS may stand.
///
/// A tag is made of atoms: FWS may go between atoms but never inside one. A tag that does not fit on the
/// current line moves to a new one; one longer than a whole line is broken between its atoms. Continuation lines
/// start with one SP.
struct FieldFolder {
    static let limit = 78

    /// The field so far, from its name on, with CRLFs between lines and no final CRLF.
    private(set) var text: [UInt8]
    private var column: Int

    /// A field named `name`: "name:" starts the first line.
    init(name: String) {
        text = Array(name.utf8) + [UInt8(ascii: ":")]
        column = text.count
    }

    /// Adds a tag after a space, or on a new line if the rest of this line is too short.
    mutating func appendTag(_ atoms: [String]) {
        let length = atoms.reduce(0) { $0 + $1.utf8.count }
        if column + 1 + length <= Self.limit {
            text.append(0x20)
            column += 1
            for atom in atoms { write(atom) }
        } else if 1 + length <= Self.limit {
            newLine()
            for atom in atoms { write(atom) }
        } else {
            // Longer than a line: start here if the first atom fits, and break between atoms from then on.
            if column + 1 + (atoms.first?.utf8.count ?? 0) <= Self.limit {
                text.append(0x20)
                column += 1
            } else {
                newLine()
            }
            continueTag(atoms)
        }
    }

    /// Adds atoms to the tag written last, with no space before the first, breaking the line where one does not fit.
    mutating func continueTag(_ atoms: [String]) {
        for atom in atoms {
            if column + atom.utf8.count > Self.limit, column > 1 {
                newLine()
                // The new line's SP is the separator, so the atom's own leading WSP would only double it.
                write(String(atom.drop(while: { $0 == " " || $0 == "\t" })))
            } else {
                write(atom)
            }
        }
    }

    private mutating func write(_ atom: String) {
        text += atom.utf8
        column += atom.utf8.count
    }

    private mutating func newLine() {
        text += [0x0D, 0x0A, 0x20]
        column = 1
    }
}
