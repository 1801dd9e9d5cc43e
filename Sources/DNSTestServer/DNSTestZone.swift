// The test server's data and its answering logic, apart from sockets.
import DNSClient
import Synchronization

/// The records and failure modes of a `DNSTestServer`, and how it answers a query.
final class DNSTestZone: Sendable {
    enum Fault: Hashable, Sendable {
        case servFail, drop, truncate
    }

    private struct State {
        var records: [String: (ttl: UInt32, data: [DNSRecordData])] = [:]
        var faults: [String: Set<Fault>] = [:]
        var queryCount = 0
        var tcpQueryCount = 0
    }

    private let state = Mutex(State())
    private let negativeTTL: UInt32

    init(negativeTTL: UInt32) { self.negativeTTL = negativeTTL }

    func set(_ name: String, _ records: [DNSRecordData], ttl: UInt32) {
        let key = Self.key(name)
        state.withLock { $0.records[key] = (ttl, records) }
    }

    func remove(_ name: String) {
        let key = Self.key(name)
        state.withLock {
            $0.records[key] = nil
            $0.faults[key] = nil
        }
    }

    func addFault(_ fault: Fault, for name: String) {
        let key = Self.key(name)
        state.withLock { _ = $0.faults[key, default: []].insert(fault) }
    }

    func clearFaults(for name: String) {
        let key = Self.key(name)
        state.withLock { $0.faults[key] = nil }
    }

    var queryCount: Int { state.withLock { $0.queryCount } }
    var tcpQueryCount: Int { state.withLock { $0.tcpQueryCount } }

    /// The encoded reply to an encoded query, or nil to stay silent (undecodable query or a dropped name).
    func reply(to bytes: [UInt8], overUDP: Bool) -> [UInt8]? {
        state.withLock {
            $0.queryCount += 1
            if !overUDP { $0.tcpQueryCount += 1 }
        }
        guard let query = try? DNSMessage(decoding: bytes), !query.header.qr else { return nil }
        var response = DNSMessage(header: DNSHeader(id: query.header.id, qr: true, opcode: query.header.opcode,
                                                    aa: true, rd: query.header.rd, ra: true),
                                  questions: query.questions)
        if let opt = query.opt {
            // Echo EDNS support (RFC 6891 §6.1.1), offering the same payload size.
            response.additionals = [DNSResourceRecord(name: ".", type: .opt, class: opt.class, ttl: 0,
                                                      data: .other(type: DNSRecordType.opt.rawValue, []))]
        }
        guard query.header.opcode == 0 else {
            response.header.rcode = .notImp
            return response.encode()
        }
        guard query.questions.count == 1, let question = query.questions.first else {
            response.header.rcode = .formErr
            return response.encode()
        }
        let name = Self.key(question.name)
        let (faults, answer) = state.withLock { state in
            (state.faults[name, default: []], Self.answer(question.type, for: name, in: state.records))
        }
        if faults.contains(.drop) { return nil }
        if faults.contains(.servFail) {
            response.header.rcode = .servFail
            return response.encode()
        }
        if faults.contains(.truncate) && overUDP {
            response.header.tc = true
            return response.encode()
        }
        response.header.rcode = answer.rcode
        response.answers = answer.records
        if answer.isNegative {
            response.authorities = [soa(for: name)]
        }
        let encoded = response.encode()
        // RFC 1035 §4.2.1 and RFC 6891 §6.2.5: a UDP reply may not exceed the size the client can take.
        let limit = max(512, Int(query.opt?.class.rawValue ?? 512))
        if overUDP && encoded.count > limit {
            response.header.tc = true
            response.answers = []
            response.authorities = []
            return response.encode()
        }
        return encoded
    }

    private struct Answer {
        var rcode: DNSResponseCode
        var records: [DNSResourceRecord]
        var isNegative: Bool
    }

    /// Looks the question up, following CNAMEs inside the zone (RFC 1034 §4.3.2 step 3a).
    private static func answer(_ type: DNSRecordType, for name: String,
                               in records: [String: (ttl: UInt32, data: [DNSRecordData])]) -> Answer {
        var answer = Answer(rcode: .noError, records: [], isNegative: true)
        var current = name
        var seen: Set<String> = []
        while seen.insert(current).inserted {
            guard let entry = records[current] else {
                let isEmptyNonTerminal = records.keys.contains { $0.hasSuffix("." + current) }
                if !isEmptyNonTerminal { answer.rcode = .nxDomain }
                return answer
            }
            let matching = entry.data.filter { $0.type == type }
            if !matching.isEmpty {
                answer.records += matching.map { DNSResourceRecord(name: current, ttl: entry.ttl, data: $0) }
                answer.isNegative = false
                return answer
            }
            guard type != .cname, let alias = entry.data.first(where: { $0.type == .cname }),
                  case .cname(let target) = alias else { return answer }
            answer.records.append(DNSResourceRecord(name: current, ttl: entry.ttl, data: alias))
            current = key(target)
        }
        return answer
    }

    private func soa(for name: String) -> DNSResourceRecord {
        let apex = name.split(separator: ".").suffix(2).joined(separator: ".")
        return DNSResourceRecord(
            name: apex.isEmpty ? "." : apex, ttl: negativeTTL,
            data: .soa(SOA(mname: "ns.\(apex)", rname: "hostmaster.\(apex)", serial: 1, refresh: 3600,
                           retry: 600, expire: 86_400, minimum: negativeTTL)))
    }

    /// Names are stored lowercase without the trailing dot.
    static func key(_ name: String) -> String {
        var key = name.lowercased()
        while key.hasSuffix(".") && key.count > 1 { key.removeLast() }
        return key
    }
}
