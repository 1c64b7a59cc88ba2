import ArgumentParser
import Delivery
import Foundation
import Gateway
import Logging
import MailCore
import ServiceLifecycle
import Store
import Web

/// `postern`: one executable, one role per sub-command (SPEC section 1, CLI-1).
public struct PosternCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "postern",
        abstract: "Anonymous e-mail for the I2P network.",
        subcommands: [Serve.self, WebmailCommand.self, CheckConfig.self, AccountCommand.self, QueueCommand.self, KeysCommand.self, HashcashCommand.self, GatewayCommand.self, I2PCommand.self])

    public init() {}
}

/// An error meant for the person at the terminal: printed as `Error: <text>`, exit status 1,
/// without the usage text that ArgumentParser adds to validation errors.
struct UserError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Options every command takes.
struct CommonOptions: ParsableArguments {
    @Option(name: .long, help: "TOML configuration file; without it the embedded defaults and ./postern-data apply.")
    var config: String?

    func load() throws -> PosternConfiguration {
        guard let config else { return PosternConfiguration() }
        do {
            return try PosternConfiguration.load(path: config)
        } catch let errors as ConfigurationErrors {
            throw UserError("\(config) has errors:\n\(errors.description)")
        }
    }
}

func makeLogger(level: String) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = Logger.Level(rawValue: ProcessInfo.processInfo.environment["POSTERN_LOG_LEVEL"] ?? level) ?? .info
        return handler
    }
    return Logger(label: "postern")
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the core: SMTP submission and POP3 (on loopback by default).")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        try await runService(options) { CoreService(configuration: $0, logger: $1, announce: $2) }
    }
}

struct WebmailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webmail",
        abstract: "Run the webmail on this machine (127.0.0.1:5081 by default), reading and sending through your I2P client tunnels.")

    @OptionGroup var options: CommonOptions

    func run() async throws {
        try await runService(options) { WebmailService(configuration: $0, logger: $1, announce: $2) }
    }
}

/// Runs one service until SIGTERM or SIGINT. Its "… listening on …" lines go to standard output
/// unbuffered, so each reaches a pipe at once (CLI-2); a configuration problem found at start
/// (an unreadable password file, say) is reported with its key.
func runService(_ options: CommonOptions,
                _ make: (PosternConfiguration, Logger, @escaping @Sendable (String) -> Void) -> any Service) async throws {
    let config = try options.load()
    let logger = makeLogger(level: config.logLevel)
    let service = make(config, logger) { line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    do { try await group.run() } catch let errors as ConfigurationErrors {
        throw UserError(errors.description)
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Validate a configuration file and report every error.")

    @Argument(help: "The TOML file to check.") var file: String

    func run() async throws {
        do {
            _ = try PosternConfiguration.load(path: file)
            print("\(file): OK")
        } catch let errors as ConfigurationErrors {
            var standardError = FileHandle.standardError
            print("\(file): \(errors.errors.count) error\(errors.errors.count == 1 ? "" : "s")", to: &standardError)
            for error in errors.errors { print("  \(error)", to: &standardError) }
            throw ExitCode(1)
        }
    }
}

extension FileHandle: @retroactive TextOutputStream {
    public func write(_ string: String) { write(Data(string.utf8)) }
}

struct AccountCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "account", abstract: "Manage accounts (works while the server runs).",
        subcommands: [Add.self, List.self, Show.self, Passwd.self, Set.self, Delete.self])

    static func open(_ options: CommonOptions) throws -> (PosternConfiguration, AccountStore) {
        let config = try options.load()
        let folder = try DataFolder(path: config.dataDirectory)
        let store = AccountStore(folder: folder, policy: AccountNamePolicy(domain: config.domain, extraReserved: config.extraReservedNames),
                                 quarantineDays: Int(config.nameQuarantine / 86400))
        return (config, store)
    }

    static func run<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as AccountError {
            throw UserError(error.description)
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an account; the password is read from the terminal or one line of standard input.")
        @OptionGroup var options: CommonOptions
        @Argument(help: "Account name (local part) or full address.") var name: String
        @Option(help: "Mailbox quota such as 50MB (default: limits.mailbox_quota).") var quota: String?

        func run() async throws {
            let (config, store) = try AccountCommand.open(options)
            var quotaBytes: Int?
            if let quota {
                guard let bytes = ByteSize.parse(quota), bytes > 0 else { throw UserError("--quota: expected a size such as 50MB") }
                quotaBytes = bytes
            }
            _ = try AccountCommand.run { try store.policy.validateNew(name) }
            let password = try PasswordInput.read(prompt: "Password for \(name): ", confirm: true)
            var account = try AccountCommand.run { try store.create(name: name, password: password, quotaBytes: quotaBytes) }
            if config.defaultDelayMode != DelayMode.defer.rawValue {
                account = try AccountCommand.run { try store.apply(settings: [("delay", config.defaultDelayMode)], to: account.name) }
            }
            print("created \(account.name)@\(config.domain)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts with mailbox use.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let (config, store) = try AccountCommand.open(options)
            for account in try store.all() {
                let quota = account.quotaBytes ?? config.mailboxQuota
                print("\(account.name)@\(config.domain)\t\(account.usedBytes)/\(quota) bytes\tdelay=\(account.delayMode.rawValue)")
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one account's settings and mailbox use.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String

        func run() async throws {
            let (config, store) = try AccountCommand.open(options)
            let account = try AccountCommand.run { try store.require(name) }
            let count = try await store.folder.database.read { db in
                try Int.fetchOne(db, sql: "SELECT count(*) FROM message WHERE account_id = ?", arguments: [account.id]) ?? 0
            }
            print("""
                address: \(account.name)@\(config.domain)
                messages: \(count)
                used: \(account.usedBytes) bytes
                quota: \(account.quotaBytes.map { "\($0) bytes" } ?? "default (\(config.mailboxQuota) bytes)")
                delay: \(account.delayMode.rawValue)
                irc_nick: \(account.ircNick ?? "-")\(account.ircNick == nil ? "" : account.ircVerified ? " (verified)" : " (waiting for its code\(account.ircCode.map { ": " + $0 } ?? " — expired: set the nick again"))")
                key_listing: \(account.keyListing ? "on" : "off")
                html_sanitise: \(account.htmlSanitise ? "on" : "off")
                internet_quota: \(account.internetQuota.map(String.init) ?? "default (\(config.internetRecipientsPerDay) per 24h)")
                internet_credit: \(account.internetCredit) (from hashcash stamps)
                """)
        }
    }

    struct Passwd: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a new password (read from the terminal or standard input).")
        @OptionGroup var options: CommonOptions
        @Argument var name: String

        func run() async throws {
            let (_, store) = try AccountCommand.open(options)
            _ = try AccountCommand.run { try store.require(name) }
            let password = try PasswordInput.read(prompt: "New password for \(name): ", confirm: true)
            try AccountCommand.run { try store.setPassword(name, password: password) }
            print("password changed")
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change settings: quota=SIZE|default, delay=none|defer|batch|pool, irc_nick=NICK, key_listing=on|off, html_sanitise=on|off, internet_quota=N|default.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String
        @Argument(help: "key=value pairs") var settings: [String]

        func run() async throws {
            let (config, store) = try AccountCommand.open(options)
            guard !settings.isEmpty else { throw UserError("give at least one key=value setting") }
            var pairs: [(String, String)] = []
            for setting in settings {
                guard let eq = setting.firstIndex(of: "=") else { throw UserError("\(setting): expected key=value") }
                pairs.append((String(setting[..<eq]), String(setting[setting.index(after: eq)...])))
            }
            let account = try AccountCommand.run { try store.apply(settings: pairs, to: name) }
            print("updated \(account.name)")
            // IRC-2: notices start once the code comes from the nick.
            if pairs.contains(where: { $0.0 == "irc_nick" }), let nick = account.ircNick, let code = account.ircCode {
                print("irc: from \(nick), send the bot the code: /msg \(config.ircNick) \(code)")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an account and all its mail at once and for good; the name stays reserved for the quarantine period.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String

        func run() async throws {
            let (_, store) = try AccountCommand.open(options)
            let removed = try AccountCommand.run { try store.delete(name) }
            print("deleted \(name.lowercased()) and \(messageCount(removed))")
        }
    }
}

/// "1 message", "2 messages".
func messageCount(_ count: Int) -> String { "\(count) message\(count == 1 ? "" : "s")" }

/// Passwords come from the terminal (echo off) or one line of standard input — never argv (CLI-1).
enum PasswordInput {
    static func read(prompt: String, confirm: Bool) throws -> String {
        if isatty(STDIN_FILENO) != 0 {
            guard let first = readHidden(prompt) else { throw UserError("no password given") }
            if confirm {
                guard let second = readHidden("Repeat: "), second == first else { throw UserError("the passwords do not match") }
            }
            return first
        }
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw UserError("expected the password as one line on standard input")
        }
        return line
    }

    private static func readHidden(_ prompt: String) -> String? {
        guard let pointer = getpass(prompt) else { return nil }
        return String(cString: pointer)
    }
}

/// `postern queue`: the operator's view of the outbound queue (QUEUE-3). Works while the server
/// runs (the runner sees a flush within a second). Shows envelopes and state, never a header or body.
struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "List, inspect, release or delete Internet-bound mail in the outbound queue.",
        subcommands: [List.self, Show.self, Flush.self, Delete.self])

    static func open(_ options: CommonOptions) throws -> (PosternConfiguration, OutboundQueue) {
        let config = try options.load()
        return (config, OutboundQueue(folder: try DataFolder(path: config.dataDirectory)))
    }

    static func time(_ seconds: Int64?) -> String {
        seconds.map { RFC5322Date.format(secondsSince1970: $0, roundedToMinute: false) } ?? "held in the pool"
    }

    static func ids(_ texts: [String]) throws -> [Int64] {
        try texts.map { text in
            guard let id = Int64(text), id > 0 else { throw UserError("\(text): expected a queue id as shown by `postern queue list`") }
            return id
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One line per queued message: id, sender, size, release, recipients waiting.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let (config, queue) = try QueueCommand.open(options)
            let messages = try queue.all()
            for message in messages {
                let next = message.recipients.compactMap(\.nextAttempt).min()
                print("\(message.id)\t\(message.accountName)@\(config.domain)\t\(message.size) bytes\t"
                      + "release \(QueueCommand.time(message.releaseAt))\tnext \(next.map { QueueCommand.time($0) } ?? "-")\t"
                      + "\(message.recipients.count) recipient\(message.recipients.count == 1 ? "" : "s")")
            }
            print("\(messageCount(messages.count)) queued")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The envelope and delivery state of queued messages (no header, no body).")
        @OptionGroup var options: CommonOptions
        @Argument(help: "Queue ids.") var ids: [String]

        func run() async throws {
            let (config, queue) = try QueueCommand.open(options)
            let wanted = try QueueCommand.ids(ids)
            let messages = try queue.all(ids: wanted)
            if let missing = wanted.first(where: { id in !messages.contains { $0.id == id } }) {
                throw UserError("no queued message with id \(missing)")
            }
            for message in messages {
                print("id: \(message.id)")
                print("sender: \(message.accountName)@\(config.domain)")
                print("size: \(message.size) bytes")
                print("release: \(QueueCommand.time(message.releaseAt))")
                for recipient in message.recipients {
                    let last = recipient.lastStatus.map { " last=\(recipient.lastCode.map(String.init) ?? "-") \($0)" } ?? ""
                    print("  to: \(recipient.address) attempts=\(recipient.attempts) next=\(QueueCommand.time(recipient.nextAttempt))\(last)"
                          + (recipient.notified ? " delay-notice-sent" : ""))
                }
            }
        }
    }

    struct Flush: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Release queued messages now (all, or the ids given), bypassing their delay and back-off.")
        @OptionGroup var options: CommonOptions
        @Argument(help: "Queue ids; none: every message.") var ids: [String] = []

        func run() async throws {
            let (_, queue) = try QueueCommand.open(options)
            let count = try queue.release(ids: ids.isEmpty ? nil : try QueueCommand.ids(ids), at: Int64(Date().timeIntervalSince1970))
            print("released \(messageCount(count))")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove queued messages for good, without a bounce.")
        @OptionGroup var options: CommonOptions
        @Argument(help: "Queue ids.") var ids: [String]

        func run() async throws {
            let (_, queue) = try QueueCommand.open(options)
            let count = try queue.delete(ids: try QueueCommand.ids(ids))
            print("deleted \(messageCount(count))")
        }
    }
}

/// `postern keys import|list|remove` (KEYS-1): the operator's side of the key book.
struct KeysCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "keys", abstract: "Publish, list and remove OpenPGP keys in the key book.",
                                                    subcommands: [Import.self, List.self, Remove.self])

    static func open(_ options: CommonOptions) throws -> (PosternConfiguration, KeyBook) {
        let (config, store) = try AccountCommand.open(options)
        return (config, KeyBook(accounts: store))
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish NAME's public key from FILE (or standard input), armoured or binary; only the user ID with NAME's address is kept.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String
        @Argument(help: "The key file; - or nothing for standard input.") var file: String?

        func run() async throws {
            let (config, book) = try KeysCommand.open(options)
            let account = try AccountCommand.run { try book.accounts.require(name) }
            let data: Data?
            if let file, file != "-" { data = FileManager.default.contents(atPath: file) } else { data = FileHandle.standardInput.readDataToEndOfFile() }
            guard let data, !data.isEmpty else { throw UserError("no key to read from \(file ?? "standard input")") }
            let key: StoredKey
            do {
                key = try KeyBookPages.prepare(Array(data), account: account.name, domain: config.domain, now: Int64(Date().timeIntervalSince1970))
            } catch {
                throw UserError("refused: \(error)")
            }
            try AccountCommand.run { try book.publish(key) }
            print("published \(key.fingerprint) for \(key.userID)\(account.keyListing ? "" : " (not listed: postern account set \(account.name) key_listing=on)")")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the published keys.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            let (_, book) = try KeysCommand.open(options)
            for (key, listed) in try AccountCommand.run({ try book.all() }) {
                print("\(key.accountName)  \(key.fingerprint)  \(listed ? "listed" : "not listed")  \(key.userID)")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove NAME's key from the key book.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String

        func run() async throws {
            let (_, book) = try KeysCommand.open(options)
            let removed = try AccountCommand.run { try book.remove(name) }
            print(removed ? "removed the key of \(name.lowercased())" : "\(name.lowercased()) had no key")
        }
    }
}

/// `postern hashcash mint ADDRESS`: a stamp that raises the address's Internet recipient quota
/// when sent in an `X-Hashcash:` header (QUOTA-2).
struct HashcashCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "hashcash", abstract: "Hashcash stamps for the Internet recipient quota.",
                                                    subcommands: [Mint.self])

    struct Mint: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Mint a stamp for ADDRESS; put it in an X-Hashcash: header of a message you send (it is removed before the message goes on).")
        @OptionGroup var options: CommonOptions
        @Argument(help: "Your address, such as alice@mail.i2p.") var address: String
        @Option(help: "Bits of work (default: hashcash.bits of the configuration).") var bits: Int?

        func run() async throws {
            let config = try options.load()
            let bits = bits ?? config.hashcashBits
            guard (1...40).contains(bits) else { throw UserError("--bits: expected 1 to 40") }
            guard EmailAddress(address) != nil else { throw UserError("\(address) is not an address") }
            var random = SystemRandomNumberGenerator()
            print(HashcashStamp.mint(resource: address.lowercased(), bits: bits, now: Int64(Date().timeIntervalSince1970), random: &random))
        }
    }
}

/// `postern gateway`: the Internet gateway (run by default), and its tools.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway", abstract: "Run the Internet gateway (the MX of the Internet domain and the relay for the core), or one of its tools.",
        subcommands: [Run.self, DKIMKeygen.self, DKIMSign.self, DKIMVerify.self, MX.self, DNS.self], defaultSubcommand: Run.self)

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "run", abstract: "Run the gateway: MX on gateway.mx_listen, the core's door on gateway.core_listen.")
        @OptionGroup var options: CommonOptions

        func run() async throws {
            try await runService(options) { GatewayService(configuration: $0, logger: $1, announce: $2) }
        }
    }

    struct DKIMVerify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dkim-verify",
            abstract: "Check the DKIM signatures of the message on standard input, keys from DNS; print one Authentication-Results verdict per signature.")
        @Option(help: "The recursive resolver, host:port.") var resolver = "127.0.0.1:53"

        func run() async throws {
            let results = await DKIM.verify(GatewayCommand.messageFromStandardInput(), keys: try GatewayCommand.resolver(resolver), now: Int64(Date().timeIntervalSince1970))
            for result in results { print(result.authenticationResult) }
            if !results.allSatisfy({ $0.verdict == .pass }) { throw ExitCode(1) }
        }
    }

    /// A message from standard input with its lines ended in CRLF, as on the wire.
    static func messageFromStandardInput() -> [UInt8] {
        let text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        return Array(text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n").utf8)
    }

    static func resolver(_ text: String) throws -> DNSResolver {
        guard let address = HostPort(text) else { throw UserError("--resolver: expected host:port such as 127.0.0.1:53") }
        return DNSResolver(host: address.host, port: address.port)
    }

    struct MX: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "mx", abstract: "Show where the gateway would deliver mail for DOMAIN (RFC 5321 5.1: MX by preference, else the domain's address).")
        @Argument var domain: String
        @Option(help: "The recursive resolver, host:port.") var resolver = "127.0.0.1:53"

        func run() async throws {
            var random = SystemRandomNumberGenerator()
            let dns = try GatewayCommand.resolver(resolver)
            do {
                switch try await dns.route(to: domain, random: &random) {
                case .hosts(let hosts):
                    for host in hosts {
                        let addresses = try await dns.addresses(of: host)
                        print("\(host)\t\(addresses.isEmpty ? "(no address)" : addresses.joined(separator: " "))")
                    }
                case .acceptsNoMail:
                    print("\(domain) accepts no mail (null MX, RFC 7505): mail to it fails at once")
                    throw ExitCode(2)
                case .noSuchDomain:
                    print("\(domain) does not exist or has neither MX nor address: mail to it fails at once")
                    throw ExitCode(2)
                }
            } catch let failure as DNSResolver.Failure {
                throw UserError("\(failure): mail to \(domain) would be retried later")
            }
        }
    }

    struct DNS: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dns", abstract: "Ask the resolver for NAME's A, AAAA, MX, TXT or CNAME records.")
        @Argument(help: "a, aaaa, mx, txt or cname") var type: String
        @Argument var name: String
        @Option(help: "The recursive resolver, host:port.") var resolver = "127.0.0.1:53"

        func run() async throws {
            guard let recordType = ["a": DNSRecordType.a, "aaaa": .aaaa, "mx": .mx, "txt": .txt, "cname": .cname][type.lowercased()] else {
                throw UserError("unknown type \(type): use a, aaaa, mx, txt or cname")
            }
            let response: DNSResponse
            do { response = try await GatewayCommand.resolver(resolver).query(name, recordType) } catch {
                throw UserError("\(error)")
            }
            if response.code == .nameError { print("\(name): no such domain"); throw ExitCode(2) }
            for record in response.answers {
                switch record.data {
                case .a(let b): print("\(record.name)\tA\t\(b.map(String.init).joined(separator: "."))")
                case .aaaa(let b): print("\(record.name)\tAAAA\t\(b.map { String($0, radix: 16) }.joined(separator: " "))")
                case .mx(let p, let x): print("\(record.name)\tMX\t\(p) \(x.isEmpty ? "." : x)")
                case .txt(let t): print("\(record.name)\tTXT\t\"\(t)\"")
                case .cname(let c): print("\(record.name)\tCNAME\t\(c)")
                }
            }
        }
    }

    struct DKIMKeygen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dkim-keygen",
            abstract: "Make an RSA-2048 and an Ed25519 DKIM key (mode 0600) and print the DNS TXT records that publish them.")
        @Option(help: "Selector prefix: the keys get SELECTOR-rsa and SELECTOR-ed25519.") var selector = "postern"
        @Option(help: "The Internet mail domain the keys sign for.") var domain = "i2pmail.org"
        @Option(help: "Folder for the key files.") var dir = "."

        func run() async throws {
            let keys: [(String, DKIM.Key)] = [
                ("\(selector)-rsa", try DKIM.Key.generateRSA()),
                ("\(selector)-ed25519", DKIM.Key.generateEd25519()),
            ]
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            for (name, key) in keys {
                let path = "\(dir)/\(name).key"
                guard !FileManager.default.fileExists(atPath: path) else { throw UserError("\(path) exists: not overwritten") }
                guard FileManager.default.createFile(atPath: path, contents: Data(key.pemRepresentation.utf8),
                                                     attributes: [.posixPermissions: 0o600]) else {
                    throw UserError("cannot write \(path)")
                }
                print("; \(key.algorithm) key in \(path)")
                print("\(name)._domainkey.\(domain). IN TXT \"\(key.dnsRecord)\"")
            }
        }
    }

    struct DKIMSign: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dkim-sign",
            abstract: "Sign the message on standard input (CRLF or LF lines) and print it with its DKIM-Signature: for checking a key and its DNS record.")
        @Option(help: "Private key file (PEM) from dkim-keygen.") var key: String
        @Option(help: "Selector the key is published under.") var selector: String
        @Option(help: "Signing domain (d=).") var domain = "i2pmail.org"

        func run() async throws {
            guard let pem = try? String(contentsOfFile: key, encoding: .utf8) else { throw UserError("cannot read \(key)") }
            let signingKey: DKIM.Key
            do { signingKey = try DKIM.Key(pem: pem) } catch { throw UserError("\(key) is not a PEM private key") }
            let signed = try DKIM.sign(GatewayCommand.messageFromStandardInput(), domain: domain, selector: selector, key: signingKey,
                                       time: Int64(Date().timeIntervalSince1970))
            FileHandle.standardOutput.write(Data(signed))
        }
    }
}
