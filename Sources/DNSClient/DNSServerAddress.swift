// Where to send queries: a resolver's IP address and port.

/// The IP address and port of a DNS server.
public struct DNSServerAddress: Sendable, Hashable, CustomStringConvertible {
    /// The standard DNS port.
    public static let defaultPort = 53

    /// An IPv4 or IPv6 address literal (IPv6 without brackets).
    public var host: String
    /// The UDP and TCP port.
    public var port: Int

    /// Creates an address without validating it.
    public init(host: String, port: Int = DNSServerAddress.defaultPort) {
        self.host = host
        self.port = port
    }

    /// Parses `ip`, `ip:port`, a bare IPv6 address, `[v6]` or `[v6]:port`; the port defaults to 53.
    /// Throws `DNSError` with code `.invalidName` for anything else (host names are not accepted: a resolver
    /// cannot resolve its own server).
    public init(parsing text: String) throws {
        let text = text.trimmingASCIIWhitespace()
        func invalid(_ why: String) -> DNSError {
            DNSError(code: .invalidName, name: text, detail: "not a DNS server address: \(why)")
        }
        func port(_ digits: Substring) throws(DNSError) -> Int {
            guard let value = Int(digits), (1...65535).contains(value), digits.allSatisfy(\.isASCII) else {
                throw invalid("bad port")
            }
            return value
        }
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw invalid("missing ]") }
            let inside = text[text.index(after: text.startIndex)..<close]
            guard IPAddressText.parseIPv6(inside) != nil else { throw invalid("bad IPv6 address") }
            let rest = text[text.index(after: close)...]
            if rest.isEmpty {
                self.init(host: String(inside))
            } else {
                guard rest.hasPrefix(":") else { throw invalid("junk after ]") }
                self.init(host: String(inside), port: try port(rest.dropFirst()))
            }
        } else if IPAddressText.parseIPv6(text) != nil {
            self.init(host: text)
        } else if IPAddressText.parseIPv4(text) != nil {
            self.init(host: text)
        } else if let colon = text.lastIndex(of: ":"), IPAddressText.parseIPv4(text[..<colon]) != nil {
            self.init(host: String(text[..<colon]), port: try port(text[text.index(after: colon)...]))
        } else {
            throw invalid("expected ip, ip:port, [v6] or [v6]:port")
        }
    }

    /// The servers named by `nameserver` lines of /etc/resolv.conf (resolv.conf(5)), or 127.0.0.1:53 if it has
    /// none or cannot be read. Zone suffixes (`fe80::1%eth0`) are not supported and such lines are skipped.
    public static func systemDefault() -> [DNSServerAddress] {
        systemDefault(resolvConf: readFile("/etc/resolv.conf") ?? "")
    }

    /// The servers named by the `nameserver` lines of resolv.conf text, or 127.0.0.1:53.
    public static func systemDefault(resolvConf: String) -> [DNSServerAddress] {
        var servers: [DNSServerAddress] = []
        for line in resolvConf.split(whereSeparator: \.isNewline) {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, fields[0] == "nameserver",
                  let server = try? DNSServerAddress(parsing: String(fields[1])) else { continue }
            servers.append(server)
        }
        return servers.isEmpty ? [DNSServerAddress(host: "127.0.0.1")] : servers
    }

    /// `1.2.3.4:53` or `[::1]:53`.
    public var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        return String(drop(while: isSpace).reversed().drop(while: isSpace).reversed())
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a small text file with the C library, keeping Foundation out of the DNS module.
private func readFile(_ path: String) -> String? {
    guard let file = fopen(path, "r") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&buffer, 1, buffer.count, file)
        if count <= 0 { break }
        bytes += buffer[0..<count]
        if bytes.count > 1 << 20 { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
