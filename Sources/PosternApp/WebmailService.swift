import Foundation
import Logging
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
        let settings = WebmailSettings(
            pop3: TCPConnector(host: pop3.host, port: pop3.port, connectTimeout: .seconds(30)),
            smtp: TCPConnector(host: smtp.host, port: smtp.port, connectTimeout: .seconds(30)),
            pop3Description: pop3.description, smtpDescription: smtp.description,
            domain: configuration.domain, dataDirectory: data, sessionIdle: configuration.webSessionIdle,
            maximumMessageSize: configuration.maxMessageSize, pageSize: configuration.webmailPageSize)
        let webmail = try Webmail(settings: settings, logger: logger)
        let listen = configuration.webmailListen
        let web = try await WebServer.start { onRunning in webmail.application(host: listen.host, port: listen.port, onRunning: onRunning) }
        announce("webmail listening on \(CoreService.describe(web.address))")
        try? await gracefulShutdown()
        web.task.cancel()
        _ = await web.task.result
        logger.info("stopped")
    }
}
