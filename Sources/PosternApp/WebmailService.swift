import Foundation
import I2P
import Logging
import NIOPosix
import ServiceLifecycle
import Web
import Wire

/// `postern webmail` (WEB-2): the webmail on the user's own machine, on `[webmail] listen`,
/// reading and sending through the user's I2P client tunnels (`[webmail] pop3`, `smtp`).
public final class WebmailService: Service {
    private let configuration: PosternConfiguration
    private let logger: Logger
    private let announce: @Sendable (String) -> Void

    public init(configuration: PosternConfiguration, logger: Logger, announce: @escaping @Sendable (String) -> Void) {
        self.configuration = configuration
        self.logger = logger
        self.announce = announce
    }

    public func run() async throws {
        let data = URL(fileURLWithPath: configuration.webmailDataDirectory, isDirectory: true)
        // Sealed files only, readable by the user alone.
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let pop3 = configuration.webmailPOP3
        let smtp = configuration.webmailSMTP
        var pop3Connector: any StreamConnector = TCPConnector(host: pop3.host, port: pop3.port, connectTimeout: .seconds(30))
        var smtpConnector: any StreamConnector = TCPConnector(host: smtp.host, port: smtp.port, connectTimeout: .seconds(30))
        var pop3Description = pop3.description
        var smtpDescription = smtp.description
        // I2P-1: the core's destinations through the router's SAM bridge, from a destination made
        // afresh for each session (nothing links one day's webmail to the next).
        var endpoint: I2PEndpoint?
        if let sam = configuration.i2pSAM,
           configuration.webmailPOP3Destination != nil || configuration.webmailSMTPDestination != nil {
            let wiring = I2PWiring(configuration: configuration, group: MultiThreadedEventLoopGroup.singleton, logger: logger, announce: { _ in })
            let client = I2PEndpoint(name: "webmail", keysFile: nil, bridge: SAMBridge(host: sam.host, port: sam.port), options: wiring.options,
                                     mode: .client, logger: logger, announce: { _ in })
            endpoint = client
            if let destination = configuration.webmailPOP3Destination {
                pop3Connector = SAMConnector(peer: destination) { client.session }
                pop3Description = "\(destination) through the SAM bridge at \(sam)"
            }
            if let destination = configuration.webmailSMTPDestination {
                smtpConnector = SAMConnector(peer: destination) { client.session }
                smtpDescription = "\(destination) through the SAM bridge at \(sam)"
            }
        }
        let endpointTask = endpoint.map { client in Task { await client.run() } }
        let settings = WebmailSettings(
            pop3: pop3Connector, smtp: smtpConnector,
            pop3Description: pop3Description, smtpDescription: smtpDescription,
            domain: configuration.domain, dataDirectory: data, sessionIdle: configuration.webSessionIdle,
            maximumMessageSize: configuration.maxMessageSize, pageSize: configuration.webmailPageSize)
        let webmail = try Webmail(settings: settings, logger: logger)
        let listen = configuration.webmailListen
        let web = try await WebServer.start { onRunning in webmail.application(host: listen.host, port: listen.port, onRunning: onRunning) }
        announce("webmail listening on \(CoreService.describe(web.address))")
        try? await gracefulShutdown()
        web.task.cancel()
        _ = await web.task.result
        if let endpoint, let endpointTask { await I2PWiring.stop([endpoint], tasks: [endpointTask]) }
        logger.info("stopped")
    }
}
