// An authoritative DNS server for tests: answers from an in-memory zone over UDP and TCP on one port, and can be
// told to fail, stay silent or truncate for chosen names.
import DNSClient
import NIOCore
import NIOPosix

/// A small authoritative server on loopback whose records and failure modes tests set at run time.
///
/// Every name set is served (there are no zone cuts). Names neither set nor above a set name answer NXDOMAIN;
/// set names without the asked type, and names above set ones (empty non-terminals), answer NOERROR with no
/// answers (NODATA); both carry an SOA whose MINIMUM is `negativeTTL`. CNAMEs are followed within the zone as an
/// authoritative server does (RFC 1034 §4.3.2). UDP answers that exceed 512 octets, or the EDNS size the query
/// advertised, come back truncated (TC) so the client retries over TCP.
public final class DNSTestServer: Sendable {
    private let zone: DNSTestZone
    private let udpChannel: any Channel
    private let tcpChannel: any Channel

    /// Where the server listens, for `DNSResolver(servers:)`.
    public let address: DNSServerAddress

    private init(zone: DNSTestZone, udpChannel: any Channel, tcpChannel: any Channel, address: DNSServerAddress) {
        self.zone = zone
        self.udpChannel = udpChannel
        self.tcpChannel = tcpChannel
        self.address = address
    }

    /// Starts an authoritative server on host:port (port 0 = pick a free one), UDP and TCP on the same port.
    /// `negativeTTL` is the SOA MINIMUM sent with NXDOMAIN and NODATA answers, bounding how long resolvers
    /// cache them (RFC 2308 §5). `eventLoopGroup` defaults to NIO's shared singleton group.
    public static func start(host: String = "127.0.0.1", port: Int = 0,
                             eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                             negativeTTL: UInt32 = 60) async throws -> DNSTestServer {
        let zone = DNSTestZone(negativeTTL: negativeTTL)
        // With port 0 the kernel picks a free UDP port, which may be taken for TCP: try a few.
        var lastError: (any Error)?
        for _ in 0..<(port == 0 ? 20 : 1) {
            // No SO_REUSEADDR on the UDP socket: on Linux two UDP sockets that both set it may share a port, even
            // one the kernel picked for port 0, and then one test's queries reach another test's server.
            let udp = try await DatagramBootstrap(group: eventLoopGroup)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(UDPQueryHandler(zone: zone))
                    }
                }
                .bind(host: host, port: port).get()
            guard let boundPort = udp.localAddress?.port else {
                try? await udp.close()
                throw DNSError(code: .ioError, detail: "UDP socket has no local port")
            }
            do {
                let tcp = try await ServerBootstrap(group: eventLoopGroup)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(TCPQueryHandler(zone: zone))
                        }
                    }
                    .bind(host: host, port: boundPort).get()
                return DNSTestServer(zone: zone, udpChannel: udp, tcpChannel: tcp,
                                     address: DNSServerAddress(host: host, port: boundPort))
            } catch {
                lastError = error
                try? await udp.close()
            }
        }
        throw lastError ?? DNSError(code: .ioError, detail: "could not bind \(host):\(port)")
    }

    /// Replace/add records for a name (any type); thread-safe, takes effect at once.
    public func set(_ name: String, _ records: [DNSRecordData], ttl: UInt32 = 60) {
        zone.set(name, records, ttl: ttl)
    }

    /// Removes a name's records and any failure mode set for it.
    public func remove(_ name: String) {
        zone.remove(name)
    }

    /// Answer SERVFAIL for that name, whatever the type.
    public func failWithServFail(_ name: String) {
        zone.addFault(.servFail, for: name)
    }

    /// Never answer queries for that name (to test timeouts).
    public func dropQueries(for name: String) {
        zone.addFault(.drop, for: name)
    }

    /// Answer with TC=1 and no records over UDP, and the full answer over TCP, for that name.
    public func truncateUDP(for name: String) {
        zone.addFault(.truncate, for: name)
    }

    /// Clears the failure modes set for a name, keeping its records.
    public func clearFaults(for name: String) {
        zone.clearFaults(for: name)
    }

    /// Queries received so far over UDP and TCP, answered or not.
    public var queryCount: Int { zone.queryCount }

    /// Queries received so far over TCP only.
    public var tcpQueryCount: Int { zone.tcpQueryCount }

    /// Closes both listeners; calling it again does nothing.
    public func stop() async throws {
        for channel in [udpChannel, tcpChannel] {
            do {
                try await channel.close()
            } catch ChannelError.alreadyClosed {
                continue
            }
        }
    }
}

/// Answers one query datagram per datagram.
private final class UDPQueryHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let zone: DNSTestZone

    init(zone: DNSTestZone) { self.zone = zone }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = Self.unwrapInboundIn(data)
        guard let reply = zone.reply(to: Array(envelope.data.readableBytesView), overUDP: true) else { return }
        let out = AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: ByteBuffer(bytes: reply))
        context.writeAndFlush(Self.wrapOutboundOut(out), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A failed send (e.g. ICMP unreachable reported on the socket) must not stop the listener.
    }
}

/// Answers length-prefixed queries on one connection, several per connection in order (RFC 7766 §6.2.1).
private final class TCPQueryHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let zone: DNSTestZone
    private var buffer = ByteBuffer()

    init(zone: DNSTestZone) { self.zone = zone }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = Self.unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        while let length = buffer.getInteger(at: buffer.readerIndex, as: UInt16.self),
              buffer.readableBytes >= 2 + Int(length) {
            buffer.moveReaderIndex(forwardBy: 2)
            guard let query = buffer.readBytes(length: Int(length)) else { break }
            guard let reply = zone.reply(to: query, overUDP: false) else { continue }
            var frame = ByteBuffer()
            frame.writeInteger(UInt16(clamping: reply.count))
            frame.writeBytes(reply)
            context.writeAndFlush(Self.wrapOutboundOut(frame), promise: nil)
        }
        buffer.discardReadBytes()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
