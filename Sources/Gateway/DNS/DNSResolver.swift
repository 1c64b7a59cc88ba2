import NIOCore
import NIOPosix

/// A stub resolver over UDP (RFC 1035 4.2.1) to one configured recursive server: the gateway's
/// MX, A/AAAA and TXT lookups go only where the operator says (`gateway.resolver`). A lost or
/// unanswered query is asked again; an answer that is not for the query (another id, another
/// sender) is ignored. Failures are temporary unless the server says the name does not exist.
public struct DNSResolver: Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// No usable answer: a temporary failure (retry later), never a bounce.
        case noAnswer
        case serverFailure(DNSResponse.Code)
        /// The answer did not fit in UDP, and TCP gave none either.
        case truncated
        case badName

        public var description: String {
            switch self {
            case .noAnswer: return "no answer from the resolver"
            case .serverFailure(let code): return "the resolver failed (\(code))"
            case .truncated: return "the answer was truncated"
            case .badName: return "not a valid domain name"
            }
        }
    }

    public var host: String
    public var port: Int
    public var timeout: TimeAmount
    public var attempts: Int
    private let group: any EventLoopGroup

    public init(host: String, port: Int, timeout: TimeAmount = .seconds(2), attempts: Int = 3,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.host = host
        self.port = port
        self.timeout = timeout
        self.attempts = attempts
        self.group = group
    }

    /// The response for `name`/`type`; NXDOMAIN is a response (code `.nameError`), not an error.
    public func query(_ name: String, _ type: DNSRecordType) async throws(Failure) -> DNSResponse {
        for _ in 0..<max(1, attempts) {
            var random = SystemRandomNumberGenerator()
            let id = UInt16.random(in: 0...UInt16.max, using: &random)
            let packet: [UInt8]
            do { packet = try DNSMessage.query(id: id, name: name, type: type) } catch { throw .badName }
            guard var response = await ask(packet, id: id) else { continue }
            if response.truncated {
                // RFC 7766 5: a truncated answer is asked again over TCP.
                guard let full = await askTCP(packet, id: id), !full.truncated else { throw .truncated }
                response = full
            }
            switch response.code {
            case .noError, .nameError:
                return response
            default:
                throw .serverFailure(response.code)
            }
        }
        throw .noAnswer
    }

    /// One UDP exchange; nil after `timeout` without a matching answer.
    private func ask(_ packet: [UInt8], id: UInt16) async -> DNSResponse? {
        do {
            let server = try SocketAddress.makeAddressResolvingHost(host, port: port)
            let channel = try await DatagramBootstrap(group: group)
                .bind(host: server.protocol == .inet6 ? "::" : "0.0.0.0", port: 0) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
                    }
                }
            let deadline = channel.channel.eventLoop.scheduleTask(in: timeout) { [channel] in channel.channel.close(promise: nil) }
            defer { deadline.cancel() }
            return try await channel.executeThenClose { inbound, outbound in
                try await outbound.write(AddressedEnvelope(remoteAddress: server, data: ByteBuffer(bytes: packet)))
                for try await envelope in inbound {
                    guard envelope.remoteAddress == server,
                          let response = try? DNSMessage.parse(Array(envelope.data.readableBytesView), expectedID: id) else { continue }
                    return response
                }
                return nil
            }
        } catch {
            return nil
        }
    }
}

extension DNSResolver {
    /// One exchange over TCP (RFC 1035 4.2.2: each message after its two-octet length); nil
    /// after `timeout` without a whole matching answer.
    fileprivate func askTCP(_ packet: [UInt8], id: UInt16) async -> DNSResponse? {
        do {
            let channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            let deadline = channel.channel.eventLoop.scheduleTask(in: timeout) { [channel] in channel.channel.close(promise: nil) }
            defer { deadline.cancel() }
            return try await channel.executeThenClose { inbound, outbound in
                var request = ByteBuffer()
                request.writeInteger(UInt16(packet.count))
                request.writeBytes(packet)
                try await outbound.write(request)
                var received = ByteBuffer()
                for try await chunk in inbound {
                    var chunk = chunk
                    received.writeBuffer(&chunk)
                    guard let length = received.getInteger(at: received.readerIndex, as: UInt16.self),
                          received.readableBytes >= 2 + Int(length) else { continue }
                    let message = Array(received.readableBytesView.dropFirst(2).prefix(Int(length)))
                    return try? DNSMessage.parse(message, expectedID: id)
                }
                return nil
            }
        } catch {
            return nil
        }
    }
}

/// Where mail for a domain goes (RFC 5321 5.1, RFC 7505).
public enum MailRoute: Sendable, Equatable {
    /// Hosts to try in this order: MX exchanges by preference (equal ones shuffled), or the
    /// domain itself when it has no MX but an address (the implicit MX).
    case hosts([String])
    /// The domain says it accepts no mail (a null MX: one MX record ".", preference 0).
    case acceptsNoMail
    /// The domain does not exist, or has neither MX nor address.
    case noSuchDomain
}

extension DNSResolver {
    /// The route for mail to `domain`. Throws (temporarily) when DNS cannot tell.
    public func route<R: RandomNumberGenerator>(to domain: String, random: inout R) async throws(Failure) -> MailRoute {
        let response = try await query(domain, .mx)
        if response.code == .nameError { return .noSuchDomain }
        let exchanges = response.answers.compactMap { record -> (UInt16, String)? in
            if case .mx(let preference, let exchange) = record.data { return (preference, exchange) }
            return nil
        }
        if exchanges.count == 1, exchanges[0].1.isEmpty { return .acceptsNoMail }
        if exchanges.isEmpty {
            // RFC 5321 5.1: no MX: the domain itself is the host, if it has an address.
            return try await addresses(of: domain).isEmpty ? .noSuchDomain : .hosts([domain])
        }
        var ordered: [String] = []
        for preference in Set(exchanges.map(\.0)).sorted() {
            var same = exchanges.filter { $0.0 == preference && !$0.1.isEmpty }.map(\.1)
            same.shuffle(using: &random)
            ordered += same
        }
        return .hosts(ordered)
    }

    /// IPv4 and IPv6 addresses of `host`, as text (IPv4 first).
    public func addresses(of host: String) async throws(Failure) -> [String] {
        var found: [String] = []
        for type in [DNSRecordType.a, .aaaa] {
            for record in try await query(host, type).answers {
                switch record.data {
                case .a(let bytes): found.append(bytes.map(String.init).joined(separator: "."))
                case .aaaa(let bytes):
                    found.append(stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                        .joined(separator: ":"))
                default: continue
                }
            }
        }
        return found
    }
}
