import Foundation
import Logging
import MailCore
import NIOCore
import NIOPosix
import Privacy
import SMTP

/// The gateway's door for the core (GW-1): an SMTP backend in the relay role. Only the core,
/// logged in with the link's credentials, may relay; only its users may be senders; only
/// Internet addresses may be recipients (never an open relay, never a loop back into I2P).
/// Accepted mail gets PRIV-4 again (the core already applied it: the gateway does not rely on
/// that), a DKIM signature per configured key, and a place in the queue before the 250.
public final class OutboundIntake: SubmissionBackend {
    public struct Settings: Sendable {
        public var internetDomain: String
        public var coreDomain: String
        /// The link's login: only the core knows it.
        public var peer: PeerCredential
        /// (selector, key) pairs; every message is signed with each (RFC 8463 suggests RSA and
        /// Ed25519 side by side while verifiers catch up).
        public var dkimKeys: [(selector: String, key: DKIM.Key)]

        public init(internetDomain: String, coreDomain: String, peer: PeerCredential,
                    dkimKeys: [(selector: String, key: DKIM.Key)]) {
            self.internetDomain = internetDomain.lowercased()
            self.coreDomain = coreDomain.lowercased()
            self.peer = peer
            self.dkimKeys = dkimKeys
        }
    }

    private let settings: Settings
    private let runner: GatewayRunner
    private let workers: NIOThreadPool
    private let logger: Logger

    public init(settings: Settings, runner: GatewayRunner, workers: NIOThreadPool, logger: Logger) {
        self.settings = settings
        self.runner = runner
        self.workers = workers
        self.logger = logger
    }

    public func authenticate(username: String, password: String) async -> SMTPAuthOutcome {
        if settings.peer.matches(username: username, password: password) { return .peer }
        logger.warning("a login at the core's door failed")
        return .failure
    }

    public func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress]) async -> RecipientVerdict {
        guard let sender else {
            return .rejected(SMTPReply(550, "5.7.1", "The null sender is not relayed to the Internet"))
        }
        guard [settings.coreDomain, settings.internetDomain].contains(sender.domain.lowercased()) else {
            return .rejected(SMTPReply(553, "5.7.1", "Only senders of @\(settings.internetDomain) are relayed"))
        }
        let domain = recipient.domain.lowercased()
        // RFC 5321 5.1: an address literal has no MX; the gateway delivers only by DNS.
        guard !domain.hasPrefix("[") else {
            return .rejected(SMTPReply(550, "5.1.2", "Address literals are not relayed: <\(recipient)>"))
        }
        guard domain != settings.internetDomain, domain != settings.coreDomain, !domain.hasSuffix(".i2p") else {
            return .rejected(SMTPReply(550, "5.7.1", "Not relayed: <\(recipient)> is not an Internet address"))
        }
        return .accepted
    }

    public func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome {
        guard let sender = envelope.sender else { return .rejected(SMTPReply(550, "5.7.1", "The null sender is not relayed")) }
        let settings = self.settings
        let runner = self.runner
        do {
            try await workers.runIfActive {
                let now = Int64(Date().timeIntervalSince1970)
                var random = SystemRandomNumberGenerator()
                // PRIV-4: From, Return-Path (the envelope sender below) and Message-ID at the
                // Internet domain, the header rebuilt from the allow-list, Date to the minute.
                var prepared = InternetBoundPreparation.prepare(Array(message.readableBytesView), senderName: sender.localPart,
                                                                domain: settings.coreDomain, internetDomain: settings.internetDomain,
                                                                now: now, random: &random)
                // DKIM t= to the minute as well: seconds would tell more than the Date does.
                for (selector, key) in settings.dkimKeys {
                    prepared = try DKIM.sign(prepared, domain: settings.internetDomain, selector: selector, key: key, time: now / 60 * 60)
                }
                try runner.enqueue(destination: .internet, sender: "\(sender.localPart)@\(settings.internetDomain)",
                                   recipients: envelope.recipients.map(\.description), message: prepared)
            }
        } catch {
            logger.error("outbound message not queued", metadata: ["error": "\(type(of: error))"])
            return .rejected(SMTPReply(451, "4.3.0", "Temporary local problem, try again later"))
        }
        return .accepted
    }
}
