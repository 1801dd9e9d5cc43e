/// Builds octets from a compact notation: hex pairs, with 'quoted' runs as ASCII and whitespace ignored,
/// e.g. `wire("07'example' 03'com' 00")`.
func wire(_ notation: String) -> [UInt8] {
    var bytes: [UInt8] = []
    var characters = notation.makeIterator()
    var pendingNibble: UInt8?
    while let character = characters.next() {
        if character == "'" {
            while let quoted = characters.next(), quoted != "'" { bytes.append(contentsOf: quoted.utf8) }
        } else if let value = character.hexDigitValue {
            if let high = pendingNibble {
                bytes.append(high << 4 | UInt8(value))
                pendingNibble = nil
            } else {
                pendingNibble = UInt8(value)
            }
        } else {
            precondition(character.isWhitespace, "unexpected \(character) in wire notation")
        }
    }
    precondition(pendingNibble == nil, "odd number of hex digits")
    return bytes
}
