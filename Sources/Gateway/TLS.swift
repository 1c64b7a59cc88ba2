import NIOCore
import NIOSSL
import NIOTLS

/// TLS for the gateway's Internet side only (the link to the core runs over I2P, which encrypts):
/// STARTTLS offered by the exchange with the operator's certificate, and opportunistic STARTTLS
/// toward remote MXs.
public enum GatewayTLS {
    /// The exchange's STARTTLS (RFC 3207): a server handler put first in the pipeline.
    public static func serverUpgrade(certificateFile: String, keyFile: String) throws -> @Sendable (any Channel) throws -> Void {
        let chain = try NIOSSLCertificate.fromPEMFile(certificateFile).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        let context = try NIOSSLContext(configuration: configuration)
        return { channel in
            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context), position: .first)
        }
    }

    /// The client side toward a remote MX: the certificate is not verified (RFC 7435: without
    /// DANE or MTA-STS there is no name to check it against; encryption still beats none), TLS
    /// 1.2 at least. Returns once the handshake is done, throwing when it fails.
    public static func clientUpgrade() throws -> @Sendable (any Channel) async throws -> Void {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        configuration.minimumTLSVersion = .tlsv12
        let context = try NIOSSLContext(configuration: configuration)
        return { channel in
            let handshake = channel.eventLoop.makePromise(of: Void.self)
            do {
                try await channel.eventLoop.submit {
                    let tls = try NIOSSLClientHandler(context: context, serverHostname: nil)
                    try channel.pipeline.syncOperations.addHandler(tls, position: .first)
                    try channel.pipeline.syncOperations.addHandler(HandshakeWatcher(done: handshake), position: .after(tls))
                }.get()
            } catch {
                handshake.fail(error)  // the peer closed before the handshake could start
                throw error
            }
            try await handshake.futureResult.get()
        }
    }
}

/// Completes `done` when the TLS handshake finishes or fails, then passes everything on.
private final class HandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    private var done: EventLoopPromise<Void>?

    init(done: EventLoopPromise<Void>) {
        self.done = done
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            done?.succeed()
            done = nil
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        done?.fail(error)
        done = nil
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        done?.fail(ChannelError.eof)
        done = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        done?.fail(ChannelError.eof)
        done = nil
    }
}
