import Foundation
import I2P
import Logging
import NIOCore
import Notify
import Store
import Wire

/// IRC-1..3 in `postern serve`: the notifier bot, fed by the mailbox's new-mail events. The
/// database is the truth about nicks: a code made by the account page or `postern account set`
/// is checked there, and each event reads the account's nick and whether it is verified, so a
/// changed nick stops notices at once.
struct IRCWiring {
    let service: IRCNotifierService
    let tasks: [Task<Void, Never>]
    let endpoint: I2PEndpoint?

    static func start(configuration: PosternConfiguration, stores: CoreStores, group: any EventLoopGroup,
                      logger: Logger) throws -> IRCWiring? {
        let connector: any StreamConnector
        var endpoint: I2PEndpoint?
        if let destination = configuration.ircDestination, let sam = configuration.i2pSAM {
            let wiring = I2PWiring(configuration: configuration, group: group, logger: logger, announce: { _ in })
            let client = I2PEndpoint(name: "irc", keysFile: nil, bridge: SAMBridge(host: sam.host, port: sam.port), options: wiring.options,
                                     mode: .client, group: group, logger: logger, announce: { _ in })
            endpoint = client
            connector = SAMConnector(peer: destination) { client.session }
        } else if let server = configuration.ircServer {
            connector = TCPConnector(host: server.host, port: server.port, connectTimeout: .seconds(30))
        } else {
            return nil
        }
        let nickServ = try configuration.ircNickServPasswordFile.map { try CoreService.readSecret($0, key: "irc.nickserv_password_file") }
        let accounts = stores.accounts
        let workers = stores.workers
        let service = IRCNotifierService(
            configuration: IRCNotifierConfiguration(
                client: IRCClientConfiguration(nick: configuration.ircNick, nickServPassword: nickServ),
                notifier: Notifier.Configuration(interval: .nanoseconds(Int64(configuration.ircNoticeInterval * 1e9)),
                                                 gather: .nanoseconds(Int64(configuration.ircGather * 1e9)))),
            connector: connector, logger: logger, group: group,
            codeChecker: { nick, text in
                // IRC-2: a pending code, sent from exactly the nick it was made for.
                guard let pending = (try? await workers.runIfActive { try accounts.pendingIRCCode(text) }) ?? nil,
                      IRCCaseMapping.equal(pending.nick, nick) else { return nil }
                do {
                    try await workers.runIfActive { try accounts.markIRCVerified(pending.account, nick: pending.nick) }
                } catch {
                    return nil
                }
                return pending.account
            })
        service.seedVerified(try accounts.verifiedIRCNicks())
        let domain = configuration.domain
        let events = stores.mail.newMailEvents()
        let feed = Task {
            for await event in events {
                let account = (try? await workers.runIfActive { try accounts.find(event.accountName) }) ?? nil
                guard let account, account.ircVerified, let nick = account.ircNick else {
                    service.removeVerified(account: event.accountName)
                    continue
                }
                if service.verifiedNick(account: account.name) != nick { service.seedVerified([account.name: nick]) }
                service.notify(account: account.name, address: "\(account.name)@\(domain)", count: event.count)
            }
        }
        var tasks = [feed, Task { await service.run() }]
        if let endpoint { tasks.append(Task { await endpoint.run() }) }
        return IRCWiring(service: service, tasks: tasks, endpoint: endpoint)
    }

    func stop() async {
        service.stop()
        if let endpoint { endpoint.stop() }
        tasks.first?.cancel()
        for task in tasks { await task.value }
    }
}
