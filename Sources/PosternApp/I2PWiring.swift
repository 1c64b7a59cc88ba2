import Foundation
import I2P
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SMTP

/// How `postern serve` and `postern gateway` appear on I2P (SPEC I2P-1, I2P-2): which endpoints,
/// with which keys files and options, and the connector each side uses to reach the other.
struct I2PWiring: Sendable {
    let configuration: PosternConfiguration
    let group: any EventLoopGroup
    let logger: Logger
    let announce: @Sendable (String) -> Void

    var bridge: SAMBridge? {
        configuration.i2pSAM.map { SAMBridge(host: $0.host, port: $0.port) }
    }

    /// SESSION CREATE options: the configured table, else what suits the public network.
    var options: [(String, String)] {
        guard let table = configuration.i2pOptions else { return SAMSession.publicNetworkOptions }
        return table.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    func keysFile(_ service: String) -> String { "\(configuration.i2pKeysDirectory)/\(service).dat" }

    /// An endpoint that forwards every stream to a local listener, without telling it who came.
    func forwarding(_ service: String, to address: SocketAddress) -> I2PEndpoint? {
        guard let bridge, let port = address.port else { return nil }
        let host = address.ipAddress.map { $0 == "0.0.0.0" || $0 == "::" ? "127.0.0.1" : $0 } ?? "127.0.0.1"
        return I2PEndpoint(name: service, keysFile: keysFile(service), bridge: bridge, options: options,
                           mode: .forward(host: host, port: port), group: group, logger: logger) { [announce] name in
            announce("\(service) on I2P at \(name)")
        }
    }

    /// The link endpoint: streams only from `peer`, each served by `server` as if it had come to
    /// its own listener.
    func link(_ service: String, peer: String, server: SubmissionServer, label: String) -> I2PEndpoint? {
        guard let bridge else { return nil }
        let logger = self.logger
        return I2PEndpoint(
            name: service, keysFile: keysFile(service), bridge: bridge, options: options,
            mode: .accept(peer: peer, serve: { socket in
                do {
                    try await socket.detach { channel in
                        channel.eventLoop.makeCompletedFuture { try server.adopt(channel) }
                    }
                } catch {
                    logger.info("an I2P link stream ended before SMTP began", metadata: ["error": "\(error)"])
                    socket.close()
                }
            }),
            group: group, logger: logger) { [announce] name in
            announce("\(label) on I2P at \(name)")
        }
    }
}

extension I2PWiring {
    /// Stops the endpoints and waits (at most 15 s) for their tasks, so nothing of theirs runs
    /// on event loops that are shutting down.
    static func stop(_ endpoints: [I2PEndpoint], tasks: [Task<Void, Never>]) async {
        for endpoint in endpoints { endpoint.stop() }
        guard !tasks.isEmpty else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for task in tasks { await task.value } }
            group.addTask { try? await Task.sleep(nanoseconds: 15_000_000_000) }
            await group.next()
            group.cancelAll()
        }
    }
}

/// The current session of an endpoint that may not exist yet when connectors are made.
final class EndpointBox: Sendable {
    private let endpoint = NIOLockedValueBox<I2PEndpoint?>(nil)
    func set(_ value: I2PEndpoint?) { endpoint.withLockedValue { $0 = value } }
    var session: SAMSession? { endpoint.withLockedValue { $0 }?.session }
}
