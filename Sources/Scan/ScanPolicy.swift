import Logging
import NIOCore

/// What a server does with a message after clamd has looked at it (SCAN-1): the SMTP answer in
/// plain values, so the core and the gateway give the same one.
public enum ScanDecision: Sendable, Equatable {
    /// Clean: go on.
    case pass
    /// clamd could not be asked and the operator chose to accept such mail: go on, marked.
    case passUnscanned
    /// Refuse with this reply; no bounce is made (the sender hears it in the dialogue).
    case refuse(code: Int, status: String, text: String)

    /// The header field that marks mail accepted without a scan (nothing else is ever added).
    public static let unscannedField = "X-Postern-Scan: not scanned (the virus scanner was unavailable)"
}

/// clamd's verdict as a decision. Infected mail is refused with `554 5.7.1` that names no
/// signature; clamd unreachable, hanging or answering garbage is `451 4.3.0` (fail closed)
/// unless `acceptUnscanned`; a message over clamd's StreamMaxLength cannot be scanned and is
/// refused for good (`552 5.3.4`) — set StreamMaxLength to at least the largest message size.
public struct ScanPolicy: Sendable {
    public let client: ClamdClient
    public let acceptUnscanned: Bool
    private let logger: Logger

    public init(client: ClamdClient, acceptUnscanned: Bool, logger: Logger) {
        self.client = client
        self.acceptUnscanned = acceptUnscanned
        self.logger = logger
    }

    public func decide(_ message: ByteBuffer) async -> ScanDecision {
        decision(for: await client.scan(message))
    }

    public func decide(_ message: ByteBuffer, on loop: any EventLoop) -> EventLoopFuture<ScanDecision> {
        client.scan(message, on: loop).map { decision(for: $0) }
    }

    public func decision(for verdict: ScanVerdict) -> ScanDecision {
        switch verdict {
        case .clean:
            return .pass
        case .infected(let signature):
            // The signature goes to the operator's log only: the sender learns nothing of it.
            logger.notice("virus found: message refused", metadata: ["signature": "\(signature)"])
            return .refuse(code: 554, status: "5.7.1", text: "Message refused: virus found")
        case .tooLarge:
            logger.warning("message larger than clamd's StreamMaxLength: refused")
            return .refuse(code: 552, status: "5.3.4", text: "Message too large for the virus scanner")
        case .unavailable(let reason):
            logger.error("virus scanner unavailable", metadata: ["reason": "\(reason)", "policy": "\(acceptUnscanned ? "accept" : "tempfail")"])
            return acceptUnscanned ? .passUnscanned
                : .refuse(code: 451, status: "4.3.0", text: "Temporary local problem: the message could not be scanned, try again later")
        }
    }
}
