import Wire
import Delivery
import Foundation
import Gateway
import I2P
import Logging
import NIOCore
import NIOPosix
import POP3
import SMTP
import Scan
import ServiceLifecycle
import Store
import Web

/// `postern serve`: the SMTP submission and POP3 listeners over one data folder.
public final class CoreService: Service {
    private let configuration: PosternConfiguration
    private let logger: Logger
    /// Called with each "<name> listening on <address>" line (CLI-2).
    private let announce: @Sendable (String) -> Void

    public init(configuration: PosternConfiguration, logger: Logger, announce: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.logger = logger
        self.announce = announce
    }

    public func run() async throws {
        let stores = try CoreStores(configuration: configuration, logger: logger)
        try? await stores.threading.removeExpired()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let relayPassword = try readRelayPassword()
        let i2p = I2PWiring(configuration: configuration, group: group, logger: logger, announce: announce)
        let linkBox = EndpointBox()
        let runner = makeQueueRunner(stores: stores, group: group, password: relayPassword, link: linkBox)
        // The gateway logs in with the link's credentials, the same pair the core uses there: on
        // the SMTP port when the link is TCP, only on the link's own destination when it is I2P.
        let gateway = configuration.relayUsername.flatMap { name in relayPassword.map { PeerCredential(username: name, password: $0) } }
        let gatewayOnSMTPPort = configuration.i2pGateway == nil ? gateway : nil
        let smtpConfiguration = SubmissionServerConfiguration(
            host: configuration.smtpListen.host, port: configuration.smtpListen.port,
            session: SubmissionSession.Configuration(domain: configuration.domain, maxMessageSize: configuration.maxMessageSize,
                                                     maxRecipients: configuration.maxRecipients),
            commandTimeout: .nanoseconds(Int64(configuration.commandTimeout * 1e9)),
            dataTimeout: .nanoseconds(Int64(configuration.dataTimeout * 1e9)),
            maxSessions: configuration.smtpMaxSessions)
        let scan = Self.scanPolicy(configuration, group: group, logger: logger)
        let smtp = SubmissionServer(
            configuration: smtpConfiguration,
            backend: SubmissionService(stores: stores, logger: logger, gateway: gatewayOnSMTPPort, scan: scan, onQueued: { runner?.wake() }),
            group: group, logger: logger)
        // The I2P link's streams are served here (never bound to a port): the same dialogue and
        // limits, the gateway's login only.
        var linkConfiguration = smtpConfiguration
        linkConfiguration.maxSessions = 100
        let linkServer = SubmissionServer(
            configuration: linkConfiguration,
            backend: SubmissionService(stores: stores, logger: logger, gateway: gateway, peerOnly: true, scan: scan), group: group, logger: logger)
        let pop3 = POP3Server(
            configuration: POP3ServerConfiguration(host: configuration.pop3Listen.host, port: configuration.pop3Listen.port,
                                                   autologout: .nanoseconds(Int64(configuration.autologout * 1e9)),
                                                   maxSessions: configuration.pop3MaxSessions),
            backend: MaildropService(stores: stores, logger: logger), group: group, logger: logger)

        var endpoints: [I2PEndpoint] = []
        var endpointTasks: [Task<Void, Never>] = []
        var webTask: Task<Void, any Error>?
        var irc: IRCWiring?
        do {
            let smtpAddress = try await smtp.start()
            announce("smtp listening on \(Self.describe(smtpAddress))")
            let pop3Address = try await pop3.start()
            announce("pop3 listening on \(Self.describe(pop3Address))")
            var webAddress: SocketAddress?
            if configuration.webEnabled {
                let pages = try AccountPages(accounts: stores.accounts, authenticator: stores.authenticator, queue: stores.queue,
                                             workers: stores.workers,
                                             settings: accountPagesSettings().with(ircBotNick: configuration.ircServer != nil || configuration.ircDestination != nil ? configuration.ircNick : nil),
                                             logger: logger, keyBook: KeyBook(accounts: stores.accounts))
                let listen = configuration.webListen
                let web = try await WebServer.start { onRunning in pages.application(host: listen.host, port: listen.port, onRunning: onRunning) }
                webTask = web.task
                webAddress = web.address
                announce("web listening on \(Self.describe(web.address))")
            }
            logger.info("postern serving", metadata: ["domain": "\(configuration.domain)"])
            // I2P-1: each published service on a destination of its own (one destination would
            // tie them together for an observer); I2P-2: the gateway's link on one more.
            if configuration.i2pSAM != nil {
                var published: [(String, SocketAddress)] = [("smtp", smtpAddress), ("pop3", pop3Address)]
                if let webAddress { published.append(("web", webAddress)) }
                for (service, address) in published where configuration.i2pPublish.contains(service) {
                    if let endpoint = i2p.forwarding(service, to: address) { endpoints.append(endpoint) }
                }
                if configuration.i2pPublish.contains("web") && webAddress == nil {
                    logger.notice("i2p.publish names web, but [web] enabled = false: not published")
                }
                if let peer = configuration.i2pGateway, let link = i2p.link("link", peer: peer, server: linkServer, label: "gateway link") {
                    linkBox.set(link)
                    endpoints.append(link)
                }
            }
            endpointTasks = endpoints.map { endpoint in Task { await endpoint.run() } }
            irc = try IRCWiring.start(configuration: configuration, stores: stores, group: group, logger: logger)
            // The outbound queue runs beside the listeners; at shutdown it ends after the message
            // in hand, whose outcome is recorded first (held and pooled mail stays queued).
            let queueTask = Task { await runner?.run() }
            // OPS-4: run until SIGTERM/SIGINT, then stop accepting and let sessions end.
            try? await gracefulShutdown()
            runner?.stop()
            await queueTask.value
        } catch {
            webTask?.cancel()
            await irc?.stop()
            logger.error("cannot start listeners", metadata: ["error": "\(error)"])
            await smtp.shutdown(gracePeriod: .zero)
            await pop3.shutdown(gracePeriod: .zero)
            await stores.close()
            try? await group.shutdownGracefully()
            throw error
        }
        logger.info("shutting down")
        async let smtpDone: Void = smtp.shutdown(gracePeriod: .seconds(10))
        async let pop3Done: Void = pop3.shutdown(gracePeriod: .seconds(10))
        async let linkDone: Void = linkServer.shutdown(gracePeriod: .seconds(10))
        _ = await (smtpDone, pop3Done, linkDone)
        await irc?.stop()
        // Web requests are short: the app's connections end with it.
        webTask?.cancel()
        _ = await webTask?.result
        // The I2P sessions go last: closing one ends its streams, which the grace period above
        // let finish; their tasks end before the event loops do.
        await I2PWiring.stop(endpoints, tasks: endpointTasks)
        await stores.close()
        try? await group.shutdownGracefully()
        logger.info("stopped")
    }

    /// The queue runner for the configured relay; nil without one (no Internet recipient is then
    /// accepted, and anything queued earlier waits).
    private func makeQueueRunner(stores: CoreStores, group: any EventLoopGroup, password: String?, link: EndpointBox) -> QueueRunner? {
        let timeout = TimeAmount.nanoseconds(Int64(configuration.relayTimeout * 1e9))
        let connector: any StreamConnector
        if let gateway = configuration.i2pGateway {
            // I2P-2: the gateway is a destination; its address is never known here.
            connector = SAMConnector(peer: gateway) { link.session }
        } else if let relay = configuration.relay {
            connector = TCPConnector(host: relay.host, port: relay.port, connectTimeout: min(timeout, .seconds(30)))
        } else {
            if let waiting = try? stores.queue.nextDue(), waiting > 0 {
                logger.warning("the outbound queue holds mail but no [relay] is configured: it waits")
            }
            return nil
        }
        let client = RelayClient(configuration: .init(connector: connector, helo: configuration.domain,
                                                      username: configuration.relayUsername, password: password,
                                                      replyTimeout: timeout),
                                 group: group)
        return QueueRunner(queue: stores.queue, mail: stores.mail, relay: client,
                           settings: .init(domain: configuration.domain, internetDomain: configuration.internetDomain,
                                           schedule: stores.schedule, retry: stores.retry),
                           clock: stores.clock, workers: stores.workers, logger: logger)
    }

    /// SCAN-1: clamd's policy from `[scan]`; without it mail is not scanned, which is said at
    /// every start.
    static func scanPolicy(_ configuration: PosternConfiguration, group: any EventLoopGroup, logger: Logger) -> ScanPolicy? {
        guard let text = configuration.scanClamd, let address = ClamdAddress(text) else {
            logger.warning("no [scan] clamd configured: mail is NOT scanned for viruses")
            return nil
        }
        let client = ClamdClient(address: address, group: group, timeout: .nanoseconds(Int64(configuration.scanTimeout * 1e9)), logger: logger)
        return ScanPolicy(client: client, acceptUnscanned: configuration.scanAcceptUnscanned, logger: logger)
    }

    private func accountPagesSettings() -> AccountPagesSettings {
        AccountPagesSettings(domain: configuration.domain, mailboxQuota: configuration.mailboxQuota,
                             internetQuota: configuration.internetRecipientsPerDay, signupBits: configuration.signupBits,
                             signupsPerHour: configuration.signupsPerHour,
                             defaultDelay: DelayMode(rawValue: configuration.defaultDelayMode) ?? .defer,
                             quarantineDays: Int(configuration.nameQuarantine / 86400), sessionIdle: configuration.webSessionIdle)
    }

    private func readRelayPassword() throws -> String? {
        guard let file = configuration.relayPasswordFile else { return nil }
        return try Self.readSecret(file, key: "relay.password_file")
    }

    /// A password file's first line (OPS-3: the key is named when it cannot be read).
    static func readSecret(_ file: String, key: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationErrors(errors: [ConfigurationError(key: key, message: "cannot read \(file)")])
        }
        let secret = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        guard !secret.isEmpty else { throw ConfigurationErrors(errors: [ConfigurationError(key: key, message: "\(file) is empty")]) }
        return secret
    }

    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
