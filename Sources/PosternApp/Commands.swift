import ArgumentParser
import Foundation
import Logging
import MailCore
import ServiceLifecycle
import Store

/// `postern`: one executable, one role per sub-command (SPEC section 1, CLI-1).
public struct PosternCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "postern",
        abstract: "Anonymous e-mail for the I2P network.",
        subcommands: [Serve.self, CheckConfig.self, AccountCommand.self])

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
        let config = try options.load()
        let logger = makeLogger(level: config.logLevel)
        // Unbuffered: each listening line reaches a pipe at once (CLI-2).
        let core = CoreService(configuration: config, logger: logger) { line in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        let group = ServiceGroup(configuration: .init(services: [core], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
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
            let account = try AccountCommand.run { try store.create(name: name, password: password, quotaBytes: quotaBytes) }
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
                irc_nick: \(account.ircNick ?? "-")
                key_listing: \(account.keyListing ? "on" : "off")
                html_sanitise: \(account.htmlSanitise ? "on" : "off")
                internet_quota: \(account.internetQuota.map(String.init) ?? "default (\(config.internetRecipientsPerDay) per 24h)")
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
            let (_, store) = try AccountCommand.open(options)
            guard !settings.isEmpty else { throw UserError("give at least one key=value setting") }
            var pairs: [(String, String)] = []
            for setting in settings {
                guard let eq = setting.firstIndex(of: "=") else { throw UserError("\(setting): expected key=value") }
                pairs.append((String(setting[..<eq]), String(setting[setting.index(after: eq)...])))
            }
            let account = try AccountCommand.run { try store.apply(settings: pairs, to: name) }
            print("updated \(account.name)")
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an account and all its mail at once and for good; the name stays reserved for the quarantine period.")
        @OptionGroup var options: CommonOptions
        @Argument var name: String

        func run() async throws {
            let (_, store) = try AccountCommand.open(options)
            let removed = try AccountCommand.run { try store.delete(name) }
            print("deleted \(name.lowercased()) and \(removed) message\(removed == 1 ? "" : "s")")
        }
    }
}

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
