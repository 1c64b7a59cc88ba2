import Wire
import Foundation
import Gateway
import I2P
import Logging
import MailCore
import NIOCore
import NIOPosix
import SMTP
import ServiceLifecycle

/// `postern gateway`: the Internet gateway (GW-1..3) — the MX of the Internet domain, the door
/// where the core hands over Internet-bound mail, and the queue toward the Internet's MXs. Its
/// data folder holds the queue only; it knows no account.
public final class GatewayService: Service {
    private let configuration: PosternConfiguration
    private let logger: Logger
    private let announce: @Sendable (String) -> Void

    public init(configuration: PosternConfiguration, logger: Logger, announce: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.logger = logger
        self.announce = announce
    }

    public func run() async throws {
        let config = configuration
        guard let passwordFile = config.gatewayPasswordFile else {
            throw ConfigurationErrors(errors: [ConfigurationError(
                key: "gateway.password_file", message: "is needed: the file with the link's password (the core's relay.password_file)")])
        }
        let password = try CoreService.readSecret(passwordFile, key: "gateway.password_file")
        let dkimKeys = try Self.loadDKIMKeys(config)
        if dkimKeys.isEmpty {
            logger.warning("no DKIM key configured: outbound mail goes unsigned (make keys with postern gateway dkim-keygen)")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let workers = NIOThreadPool(numberOfThreads: 2)
        workers.start()
        let queue = try GatewayQueue(directory: "\(config.gatewayDataDirectory)/queue")
        let resolver = DNSResolver(host: config.gatewayResolver.host, port: config.gatewayResolver.port, group: group)
        let upgrade = try GatewayTLS.clientUpgrade()
        let mx = MXDelivery(routing: resolver, port: config.mxPort, helo: config.mxHostname,
                            tls: config.outboundTLS == "encrypt" ? .required(upgrade: upgrade) : .opportunistic(upgrade: upgrade),
                            sourceAddress: config.outboundAddress, group: group, logger: logger)
        // I2P-2: with i2p.core, the core is a destination, reached from the door's own session.
        let i2p = I2PWiring(configuration: config, group: group, logger: logger, announce: announce)
        let doorBox = EndpointBox()
        let connector: any StreamConnector = config.i2pCore.map { peer in SAMConnector(peer: peer) { doorBox.session } }
            ?? TCPConnector(host: config.gatewayCore.host, port: config.gatewayCore.port)
        let core = CoreLink(connector: connector, helo: config.internetDomain, username: config.gatewayUsername, password: password,
                            group: group)
        let runner = try GatewayRunner(
            queue: queue, internet: mx, core: core,
            settings: .init(internetDomain: config.internetDomain, coreDomain: config.domain,
                            retry: RetrySchedule(first: Int64(config.retryFirst), maximum: Int64(config.retryMax),
                                                 giveUpAfter: Int64(config.giveUpAfter), delayNoticeAfter: Int64(config.delayNoticeAfter))),
            workers: workers, logger: logger)
        let intake = OutboundIntake(settings: .init(internetDomain: config.internetDomain, coreDomain: config.domain,
                                                    peer: PeerCredential(username: config.gatewayUsername, password: password),
                                                    dkimKeys: dkimKeys),
                                    runner: runner, workers: workers, logger: logger)
        let exchange = Exchange(settings: .init(internetDomain: config.internetDomain, coreDomain: config.domain,
                                                blocklists: config.dnsBlocklists, rejectSPFFail: config.spfFail == "reject",
                                                scan: CoreService.scanPolicy(config, group: group, logger: logger)),
                                resolver: resolver, core: core, logger: logger)
        var startTLS: (@Sendable (any Channel) throws -> Void)?
        if let certificate = config.tlsCertificate, let key = config.tlsKey {
            do { startTLS = try GatewayTLS.serverUpgrade(certificateFile: certificate, keyFile: key) } catch {
                throw ConfigurationErrors(errors: [ConfigurationError(key: "gateway.tls_cert", message: "cannot load the certificate or key: \(error)")])
            }
        } else {
            logger.warning("no tls_cert/tls_key: the MX offers no STARTTLS")
        }
        let limiter = ConnectionRateLimiter(limit: config.connectionsPerMinute)
        let timeouts = (command: TimeAmount.nanoseconds(Int64(config.commandTimeout * 1e9)),
                        data: TimeAmount.nanoseconds(Int64(config.dataTimeout * 1e9)))
        let mxServer = SubmissionServer(
            configuration: SubmissionServerConfiguration(
                host: config.gatewayMXListen.host, port: config.gatewayMXListen.port,
                // maxErrors 10: an unknown recipient counts, so guessing account names ends soon.
                session: .init(domain: config.mxHostname, role: .exchange, offersSTARTTLS: startTLS != nil,
                               maxMessageSize: config.gatewayMaxMessageSize, maxRecipients: config.gatewayMaxRecipients,
                               maxErrors: 10),
                commandTimeout: timeouts.command, dataTimeout: timeouts.data, maxSessions: config.gatewayMaxSessions,
                admission: { remote in
                    // GW-2 rate control; the address is counted in memory, never written down.
                    guard let address = remote?.ipAddress, !limiter.admit(address) else { return nil }
                    return SMTPReply(421, "4.7.0", "Too many connections from your address, try again later")
                },
                startTLS: startTLS),
            backend: exchange, group: group, logger: logger)
        let intakeServer = SubmissionServer(
            configuration: SubmissionServerConfiguration(
                host: config.gatewayCoreListen.host, port: config.gatewayCoreListen.port,
                session: .init(domain: config.mxHostname, role: .relay, maxMessageSize: config.gatewayMaxMessageSize,
                               maxRecipients: config.gatewayMaxRecipients),
                commandTimeout: timeouts.command, dataTimeout: timeouts.data, maxSessions: 100),
            backend: intake, group: group, logger: logger)
        do {
            let mxAddress = try await mxServer.start()
            announce("mx listening on \(CoreService.describe(mxAddress))")
            if config.i2pCore == nil {
                let intakeAddress = try await intakeServer.start()
                announce("core link listening on \(CoreService.describe(intakeAddress))")
            }
        } catch {
            logger.error("cannot start listeners", metadata: ["error": "\(error)"])
            await mxServer.shutdown(gracePeriod: .zero)
            await intakeServer.shutdown(gracePeriod: .zero)
            try? await workers.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
        logger.info("gateway serving", metadata: ["domain": "\(config.internetDomain)"])
        let queueTask = Task { await runner.run() }
        // The door on I2P: streams from the core's destination only (I2P-2).
        let door = config.i2pCore.flatMap { i2p.link("door", peer: $0, server: intakeServer, label: "core link") }
        doorBox.set(door)
        let doorTask = door.map { door in Task { await door.run() } }
        try? await gracefulShutdown()
        logger.info("shutting down")
        async let mxDone: Void = mxServer.shutdown(gracePeriod: .seconds(10))
        async let intakeDone: Void = intakeServer.shutdown(gracePeriod: .seconds(10))
        _ = await (mxDone, intakeDone)
        runner.stop()
        await queueTask.value
        // The door last: the runner's message in hand may be going to the core through it.
        await I2PWiring.stop(door.map { [$0] } ?? [], tasks: doorTask.map { [$0] } ?? [])
        try? await workers.shutdownGracefully()
        try? await group.shutdownGracefully()
        logger.info("stopped")
    }

    /// The configured DKIM keys with their selectors: `dkim_dir`'s keys from dkim-keygen, and
    /// `dkim_key_file` under `dkim_selector`.
    static func loadDKIMKeys(_ config: PosternConfiguration) throws -> [(selector: String, key: DKIM.Key)] {
        var files: [(selector: String, path: String, key: String, required: Bool)] = []
        if let directory = config.dkimDirectory {
            for kind in ["rsa", "ed25519"] {
                files.append(("\(config.dkimSelector)-\(kind)", "\(directory)/\(config.dkimSelector)-\(kind).key", "gateway.dkim_dir", false))
            }
        }
        if !config.dkimKeyFile.isEmpty {
            files.append((config.dkimSelector, config.dkimKeyFile, "gateway.dkim_key_file",
                          config.dkimKeyFile != PosternConfiguration.defaultDKIMKeyFile))
        }
        var keys: [(selector: String, key: DKIM.Key)] = []
        for file in files {
            guard let pem = try? String(contentsOfFile: file.path, encoding: .utf8) else {
                if file.required { throw ConfigurationErrors(errors: [ConfigurationError(key: file.key, message: "cannot read \(file.path)")]) }
                continue
            }
            do { keys.append((file.selector, try DKIM.Key(pem: pem))) } catch {
                throw ConfigurationErrors(errors: [ConfigurationError(key: file.key, message: "\(file.path) is not a PEM private key")])
            }
        }
        if config.dkimDirectory != nil && keys.isEmpty {
            throw ConfigurationErrors(errors: [ConfigurationError(
                key: "gateway.dkim_dir", message: "holds no \(config.dkimSelector)-rsa.key or \(config.dkimSelector)-ed25519.key (postern gateway dkim-keygen --dir …)")])
        }
        return keys
    }
}
