import Wire
import Logging
import NIOCore
import NIOPosix
import SMTP

/// What happened to one recipient of one delivery attempt by the gateway.
public enum GatewayOutcome: Sendable, Equatable {
    case delivered
    /// Try again later. `code`: the remote reply code, nil when there was none (DNS, connection).
    case temporary(code: Int?, status: String)
    case permanent(code: Int?, status: String)

    init(_ outcome: RelayClient.Outcome) {
        switch outcome {
        case .delivered: self = .delivered
        case .temporary(let code, let status): self = .temporary(code: code, status: status)
        case .permanent(let code, let status): self = .permanent(code: code, status: status)
        }
    }

    var isTemporary: Bool { if case .temporary = self { return true } else { return false } }
}

/// Carries one message to the recipients of one domain on the Internet.
public protocol InternetDelivery: Sendable {
    func deliver(from sender: String, to recipients: [String], domain: String, message: ByteBuffer) async -> [GatewayOutcome]
}

/// Where mail for a domain goes, and the addresses of a host: the DNS resolver, or a fixed
/// table in tests.
public protocol MailRouting: Sendable {
    func route(to domain: String) async throws -> MailRoute
    func addresses(of host: String) async throws -> [String]
}

extension DNSResolver: MailRouting {
    public func route(to domain: String) async throws -> MailRoute {
        var random = SystemRandomNumberGenerator()
        return try await route(to: domain, random: &random)
    }
}

/// Delivery by MX (RFC 5321 5): the domain's MX hosts in preference order (the domain itself
/// when it has none, RFC 5321 5.1; nothing for a null MX, RFC 7505), each host's addresses in
/// turn until one of them gives an answer that is not temporary for every recipient. STARTTLS
/// whenever the host offers it; when the handshake fails, the same address again in clear
/// (opportunistic, RFC 7435), unless the policy requires TLS.
public struct MXDelivery: InternetDelivery {
    public var routing: any MailRouting
    /// 25, except in tests.
    public var port: Int
    /// The EHLO name: the Internet domain's MX name, nothing of the core.
    public var helo: String
    public var tls: TLSPolicy
    public var connectTimeout: TimeAmount
    public var replyTimeout: TimeAmount
    /// At most this many addresses are tried in one attempt (RFC 5321 5.1 asks for a limit).
    public var maxAddresses: Int
    /// The local address connections leave from (the one the SPF record names); nil: any.
    public var sourceAddress: String?
    private let group: any EventLoopGroup
    private let logger: Logger

    public init(routing: any MailRouting, port: Int = 25, helo: String, tls: TLSPolicy, connectTimeout: TimeAmount = .seconds(30),
                replyTimeout: TimeAmount = .seconds(300), maxAddresses: Int = 6, sourceAddress: String? = nil,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger) {
        self.sourceAddress = sourceAddress
        self.routing = routing
        self.port = port
        self.helo = helo
        self.tls = tls
        self.connectTimeout = connectTimeout
        self.replyTimeout = replyTimeout
        self.maxAddresses = maxAddresses
        self.group = group
        self.logger = logger
    }

    public func deliver(from sender: String, to recipients: [String], domain: String, message: ByteBuffer) async -> [GatewayOutcome] {
        func all(_ outcome: GatewayOutcome) -> [GatewayOutcome] { Array(repeating: outcome, count: recipients.count) }
        let hosts: [String]
        do {
            switch try await routing.route(to: domain) {
            case .hosts(let found): hosts = found
            // RFC 7505 3: a null MX means the domain takes no mail: 556 5.1.10 at once.
            case .acceptsNoMail: return all(.permanent(code: nil, status: "5.1.10"))
            case .noSuchDomain: return all(.permanent(code: nil, status: "5.1.2"))
            }
        } catch {
            // A DNS failure is never a bounce (RFC 5321 5.1): 4.4.3, directory server failure.
            return all(.temporary(code: nil, status: "4.4.3"))
        }
        var last = all(.temporary(code: nil, status: "4.4.1"))
        var tried = 0
        for host in hosts {
            let addresses: [String]
            do { addresses = try await routing.addresses(of: host) } catch {
                last = all(.temporary(code: nil, status: "4.4.3"))
                continue
            }
            // From an IPv4 source only IPv4 addresses can be reached, and the other way round.
            let reachable = sourceAddress.map { source in addresses.filter { $0.contains(":") == source.contains(":") } } ?? addresses
            for address in reachable {
                guard tried < maxAddresses else { return last }
                tried += 1
                let connector = TCPConnector(host: address, port: port, connectTimeout: connectTimeout, sourceAddress: sourceAddress)
                let client = RelayClient(configuration: .init(connector: connector, helo: helo, replyTimeout: replyTimeout, tls: tls),
                                         group: group)
                var attempt = await client.attempt(from: sender, to: recipients, message: message)
                if attempt.tlsFailed, case .opportunistic = tls {
                    logger.info("TLS handshake with a remote MX failed; trying again without TLS")
                    attempt = await client.attempt(from: sender, to: recipients, message: message, tls: TLSPolicy.none)
                }
                last = attempt.outcomes.map(GatewayOutcome.init)
                if !last.allSatisfy(\.isTemporary) { return last }
            }
        }
        return last
    }
}
