import NIOCore
import NIOPosix

/// Opens a byte stream to a peer and sets up its pipeline with `initializer`: TCP to a host and
/// port today; the link between core and gateway can run over another transport (an I2P stream)
/// without the SMTP or POP3 client knowing.
public protocol StreamConnector: Sendable {
    func connect<Output: Sendable>(group: any EventLoopGroup,
                                   initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output
}

/// A TCP connection to `host`:`port`, from `sourceAddress` when given (a gateway sends from
/// the address its SPF record names).
public struct TCPConnector: StreamConnector {
    public var host: String
    public var port: Int
    public var connectTimeout: TimeAmount
    public var sourceAddress: String?

    public init(host: String, port: Int, connectTimeout: TimeAmount = .seconds(30), sourceAddress: String? = nil) {
        self.host = host
        self.port = port
        self.connectTimeout = connectTimeout
        self.sourceAddress = sourceAddress
    }

    public func connect<Output: Sendable>(group: any EventLoopGroup,
                                          initializer: @escaping @Sendable (any Channel) -> EventLoopFuture<Output>) async throws -> Output {
        var bootstrap = ClientBootstrap(group: group)
            .connectTimeout(connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
        if let sourceAddress { bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: sourceAddress, port: 0)) }
        return try await bootstrap.connect(host: host, port: port, channelInitializer: initializer)
    }
}
