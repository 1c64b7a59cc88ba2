import ArgumentParser
import Foundation
import I2P
import NIOPosix

/// `postern i2p`: the names of Postern's destinations, and an i2pd tunnels.conf (I2P-3).
struct I2PCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "i2p", abstract: "Postern's I2P destinations: their .b32.i2p names, or an i2pd tunnels.conf.",
        subcommands: [Name.self, Tunnels.self])

    static let services = ["smtp", "pop3", "web", "link", "door"]

    struct Name: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the .b32.i2p name of each SERVICE (smtp, pop3, web; link: the core's side of the gateway link; door: the gateway's), making its keys through the SAM bridge when they do not exist yet.")
        @OptionGroup var options: CommonOptions
        @Argument(help: "smtp, pop3, web, link or door") var services: [String] = ["smtp", "pop3"]

        func run() async throws {
            let config = try options.load()
            guard let sam = config.i2pSAM else { throw UserError("i2p.sam is not configured: the keys are made by the SAM bridge") }
            let bridge = SAMBridge(host: sam.host, port: sam.port, replyTimeout: .seconds(30))
            for service in services {
                guard I2PCommand.services.contains(service) else {
                    throw UserError("unknown service \(service): use \(I2PCommand.services.joined(separator: ", "))")
                }
                let path = "\(config.i2pKeysDirectory)/\(service).dat"
                let keys: [UInt8]
                do {
                    keys = try await I2PKeys.loadOrGenerate(path, bridge: bridge, group: MultiThreadedEventLoopGroup.singleton)
                } catch {
                    throw UserError("\(path): \(error)")
                }
                guard let destination = I2PDestination(base64: I2PKeys.encode(keys)) else { throw UserError("\(path) holds no I2P keys") }
                print("\(service) \(destination.b32)")
            }
        }
    }

    struct Tunnels: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print an i2pd tunnels.conf that publishes SMTP and POP3 with i2pd's own server tunnels (instead of i2p.sam), using the same keys files.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let config = try options.load()
            let keys = URL(fileURLWithPath: config.i2pKeysDirectory).standardizedFileURL.path
            print(I2PCommand.tunnelsConf(config, keysDirectory: keys), terminator: "")
        }
    }

    /// Server tunnels for the core's SMTP, POP3 and account pages (an HTTP tunnel: i2pd then
    /// checks the requests are HTTP; the keys files are i2pd's format: i2pd makes
    /// them on first start when missing), and, commented out, what a user's router needs.
    static func tunnelsConf(_ config: PosternConfiguration, keysDirectory: String) -> String {
        var out = "# i2pd tunnels.conf for Postern (postern i2p tunnels). Use this or i2p.sam, not both:\n"
            + "# one destination cannot be published twice. i2pd reads keys files from its own data\n"
            + "# directory: copy \(keysDirectory)/smtp.dat, pop3.dat and web.dat there as postern-smtp.dat,\n"
            + "# postern-pop3.dat and postern-web.dat (postern i2p name smtp pop3 web makes them and prints\n"
            + "# their names).\n"
        // The same tunnel options as the SAM sessions would get: [i2p.options], else the public network's.
        let options = config.i2pOptions.map { $0.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } } ?? SAMSession.publicNetworkOptions
        var services = [("smtp", config.smtpListen, "server"), ("pop3", config.pop3Listen, "server")]
        if config.webEnabled { services.append(("web", config.webListen, "http")) }
        for (service, listen, type) in services {
            out += "\n[postern-\(service)]\ntype = \(type)\n"
                + "host = \(listen.host == "0.0.0.0" ? "127.0.0.1" : listen.host)\nport = \(listen.port)\n"
                + "keys = postern-\(service).dat\n"
                + options.map { "\($0.0) = \($0.1)\n" }.joined()
        }
        out += """

            # On a user's router: client tunnels to the names `postern i2p name smtp pop3` prints.
            # [smtp.postman]
            # type = client
            # address = 127.0.0.1
            # port = 7659
            # destination = <smtp name>.b32.i2p
            # keys = transient-smtp
            # [pop.postman]
            # type = client
            # address = 127.0.0.1
            # port = 7660
            # destination = <pop3 name>.b32.i2p
            # keys = transient-pop3
            # The account pages: browse to the web name through the router's HTTP proxy.

            """
        return out
    }
}
