import Foundation
import I2P
import MailCore
import NIOCore
import Notify
import Scan
import TOMLKit

/// `host:port` of a listener or peer.
public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `127.0.0.1:5587` or `[::1]:5587`.
    public init?(_ text: String) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
        }
        guard !hostPart.isEmpty, let port = Int(portPart), (0...65535).contains(port) else { return nil }
        self.init(host: String(hostPart), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The whole configuration (OPS-3, CLI-4): one TOML file, every key optional, defaults from SPEC.
public struct PosternConfiguration: Sendable, Equatable {
    public var domain = "mail.i2p"
    public var internetDomain = "i2pmail.org"
    public var dataDirectory = "postern-data"
    /// Account that receives postmaster@ and abuse@; nil: the oldest account.
    public var operatorAccount: String?
    public var extraReservedNames: [String] = []
    public var logLevel = "info"

    public var smtpListen = HostPort(host: "127.0.0.1", port: 5587)
    public var maxMessageSize = 32 * 1_048_576
    public var maxRecipients = 100
    public var smtpMaxSessions = 1000
    public var commandTimeout: Double = 300
    public var dataTimeout: Double = 600

    public var pop3Listen = HostPort(host: "127.0.0.1", port: 5110)
    /// The account pages (WEB-1); `[web] enabled = false` leaves them off.
    public var webListen = HostPort(host: "127.0.0.1", port: 5080)
    public var webEnabled = true
    /// Bits of the sign-up's proof-of-work stamp (fewer than for quota stamps: a browser mints it).
    public var signupBits = 20
    /// A web session ends after this long without a request.
    public var webSessionIdle: Double = 1800
    /// `postern webmail` (WEB-2): where it listens, the core's SMTP and POP3 as the user's
    /// tunnels reach them, and its own data folder (sealed Sent, Drafts, Trash).
    public var webmailListen = HostPort(host: "127.0.0.1", port: 5081)
    public var webmailSMTP = HostPort(host: "127.0.0.1", port: 7659)
    public var webmailPOP3 = HostPort(host: "127.0.0.1", port: 7660)
    public var webmailDataDirectory = "webmail-data"
    public var webmailPageSize = 25
    /// The IRC notifier (IRC-1..3): the server (an I2P client tunnel, or `ircDestination` through
    /// SAM); nil: no notices.
    public var ircServer: HostPort?
    public var ircDestination: String?
    public var ircNick = "postman"
    public var ircNoticeInterval: Double = 300
    /// How long the first new mail after a quiet time waits for more before one notice counts all.
    public var ircGather: Double = 30
    public var ircNickServPasswordFile: String?
    /// clamd (SCAN-1): "host:port" or "unix:/path"; nil: no scanning (said loudly at start).
    public var scanClamd: String?
    /// Accept mail unscanned (marked) when clamd cannot be asked, instead of 451.
    public var scanAcceptUnscanned = false
    public var scanTimeout: Double = 60
    /// The core's SMTP and POP3 as I2P destinations (b32 names), reached through `[i2p] sam`
    /// instead of the client tunnels at `webmailSMTP`/`webmailPOP3`.
    public var webmailSMTPDestination: String?
    public var webmailPOP3Destination: String?
    public var pop3MaxSessions = 1000
    public var autologout: Double = 600

    public var mailboxQuota = 50_000_000
    public var internetRecipientsPerDay = 20
    public var signupsPerHour = 10
    public var authPenaltyBase: Double = 1
    public var authPenaltyMax: Double = 15
    public var nameQuarantine: Double = 180 * 86400

    /// The next hop for Internet-bound mail (the gateway); nil: Internet recipients are refused (SMTP-4).
    public var relay: HostPort?
    public var relayUsername: String?
    public var relayPasswordFile: String?
    /// The longest wait for the relay's connection and each of its replies.
    public var relayTimeout: Double = 300

    /// Delay of Internet-bound mail (DELAY-1..4), seconds.
    public var defaultDelayMode = "defer"
    public var deferMin: Double = 2000
    public var deferMax: Double = 4000
    /// Batch release times, minutes after 00:00 UTC.
    public var batchTimes: [Int] = [0, 12 * 60]
    public var poolInterval: Double = 900
    public var poolMin = 5
    public var poolRate = 0.65

    /// Retries (QUEUE-2), seconds.
    public var retryFirst: Double = 300
    public var retryMax: Double = 4 * 3600
    public var giveUpAfter: Double = 5 * 86400
    public var delayNoticeAfter: Double = 4 * 3600

    /// Hashcash stamps that raise the Internet recipient quota (QUOTA-2).
    public var hashcashBits = 22
    public var hashcashRecipients = 5

    /// The gateway (`postern gateway`, GW-1..3; `[gateway]`).
    public var gatewayMXListen = HostPort(host: "127.0.0.1", port: 5025)
    /// Where the core hands over Internet-bound mail (the core's `relay.address`).
    public var gatewayCoreListen = HostPort(host: "127.0.0.1", port: 5026)
    /// Where the gateway reaches the core's SMTP listener.
    public var gatewayCore = HostPort(host: "127.0.0.1", port: 5587)
    public var gatewayResolver = HostPort(host: "127.0.0.1", port: 53)
    /// The MX's name in greetings and EHLO; default `mx.` + the Internet domain.
    public var gatewayHostname: String?
    /// The link's login, both ways (the core's `relay.username` and `relay.password_file`).
    public var gatewayUsername = "core"
    public var gatewayPasswordFile: String?
    public var gatewayDataDirectory = "gateway-data"
    /// DKIM: keys from `postern gateway dkim-keygen` in `dkim_dir` (`SELECTOR-rsa.key`,
    /// `SELECTOR-ed25519.key`), and/or one key file signed under `dkim_selector` itself (the
    /// default file is used when it exists; one named in the file must exist).
    public var dkimSelector = "postern"
    public var dkimDirectory: String?
    public var dkimKeyFile = PosternConfiguration.defaultDKIMKeyFile
    public static let defaultDKIMKeyFile = "dkim.key"
    /// STARTTLS on the MX: both or neither.
    public var tlsCertificate: String?
    public var tlsKey: String?
    public var dnsBlocklists: [String] = []
    /// Remote MXs listen here (25; another port only for tests).
    public var mxPort = 25
    /// The local address outbound connections leave from (the one the SPF record names).
    public var outboundAddress: String?
    /// Outbound TLS: "may" (opportunistic, RFC 7435) or "encrypt" (no delivery without TLS).
    public var outboundTLS = "may"
    /// SPF `fail`: "reject" (550 5.7.23) or "mark" (recorded in Authentication-Results only).
    public var spfFail = "reject"
    public var gatewayMaxMessageSize = 32 * 1_048_576
    public var gatewayMaxRecipients = 100
    public var gatewayMaxSessions = 500
    /// New connections allowed per client address per minute.
    public var connectionsPerMinute = 30

    /// I2P (SPEC I2P-1..3; `[i2p]`): the SAM bridge; nil: no I2P, services on loopback only.
    public var i2pSAM: HostPort?
    /// Services the core publishes on destinations of their own: smtp, pop3, web.
    public var i2pPublish = ["smtp", "pop3", "web"]
    public var i2pKeysDirectory = "i2p-keys"
    /// SESSION CREATE options; nil: `SAMSession.publicNetworkOptions`.
    public var i2pOptions: [String: String]?
    /// The core⇄gateway link over I2P (I2P-2): on the core, the gateway's destination; on the
    /// gateway, the core's link destination (`.b32.i2p` names or base64).
    public var i2pGateway: String?
    public var i2pCore: String?

    public init() {}

    /// Internet mail has somewhere to go: a relay address, or the gateway over I2P.
    public var hasGateway: Bool { relay != nil || i2pGateway != nil }

    /// The MX's host name (greeting, EHLO).
    public var mxHostname: String { gatewayHostname ?? "mx.\(internetDomain)" }
}

/// One problem in a configuration file, with the key it concerns (OPS-3).
public struct ConfigurationError: Error, Equatable, CustomStringConvertible, Sendable {
    public var key: String
    public var message: String
    public var line: Int?

    public var description: String {
        let location = line.map { "line \($0): " } ?? ""
        return key.isEmpty ? "\(location)\(message)" : "\(location)\(key): \(message)"
    }
}

public struct ConfigurationErrors: Error, CustomStringConvertible, Sendable {
    public var errors: [ConfigurationError]
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

extension PosternConfiguration {
    private enum Kind {
        case string, hostPort, size, duration, positiveInt, fraction, bool, stringArray, table, dailyTimes
    }

    /// Every section and key SPEC CLI-4 names, with its type. Keys of features still to be built
    /// are validated too, so a file written for a later version is checked the same way.
    private static let schema: [String: [String: Kind]] = [
        "server": ["domain": .string, "internet_domain": .string, "data_dir": .string, "operator": .string,
                   "reserved_names": .stringArray, "log_level": .string],
        "smtp": ["listen": .hostPort, "max_message_size": .size, "max_recipients": .positiveInt, "max_sessions": .positiveInt,
                 "command_timeout": .duration, "data_timeout": .duration],
        "pop3": ["listen": .hostPort, "max_sessions": .positiveInt, "autologout": .duration],
        "web": ["listen": .hostPort, "enabled": .bool, "signup_bits": .positiveInt, "session_idle": .duration],
        "metrics": ["listen": .hostPort],
        "limits": ["mailbox_quota": .size, "internet_recipients_per_day": .positiveInt, "signups_per_hour": .positiveInt,
                   "auth_penalty_base": .duration, "auth_penalty_max": .duration, "name_quarantine": .duration],
        "delay": ["default": .string, "defer_min": .duration, "defer_max": .duration, "batch_times": .dailyTimes,
                  "pool_interval": .duration, "pool_min": .positiveInt, "pool_rate": .fraction],
        "queue": ["retry_first": .duration, "retry_max": .duration, "give_up_after": .duration, "delay_notice_after": .duration],
        "hashcash": ["bits": .positiveInt, "recipients_per_stamp": .positiveInt],
        "relay": ["address": .hostPort, "username": .string, "password_file": .string, "timeout": .duration],
        "scan": ["clamd": .string, "on_unavailable": .string, "timeout": .duration],
        "irc": ["server": .hostPort, "nick": .string, "notice_interval": .duration, "nickserv_password_file": .string,
                "gather": .duration, "destination": .string],
        "i2p": ["sam": .hostPort, "publish": .stringArray, "keys_dir": .string, "options": .table, "gateway": .string, "core": .string],
        "gateway": ["mx_listen": .hostPort, "core_listen": .hostPort, "core": .hostPort, "resolver": .hostPort,
                    "dkim_selector": .string, "dkim_key_file": .string, "tls_cert": .string, "tls_key": .string, "dnsbl": .stringArray,
                    "hostname": .string, "username": .string, "password_file": .string, "data_dir": .string, "dkim_dir": .string,
                    "mx_port": .positiveInt, "outbound_address": .string, "outbound_tls": .string, "spf_fail": .string, "max_message_size": .size,
                    "max_recipients": .positiveInt, "max_sessions": .positiveInt, "connections_per_minute": .positiveInt],
        "webmail": ["listen": .hostPort, "smtp": .hostPort, "pop3": .hostPort, "data_dir": .string, "session_idle": .duration, "page_size": .positiveInt,
                    "smtp_destination": .string, "pop3_destination": .string],
    ]

    /// Reads and validates a TOML file. Throws `ConfigurationErrors` listing every problem.
    public static func load(path: String) throws -> PosternConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationErrors(errors: [ConfigurationError(key: "", message: "cannot read configuration file \(path)")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationErrors(errors: [ConfigurationError(key: "", message: "configuration file is not UTF-8")])
        }
        return try parse(text)
    }

    public static func parse(_ text: String) throws -> PosternConfiguration {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationErrors(errors: [ConfigurationError(key: "", message: "TOML syntax error: \(error.description)",
                                                                  line: error.source.begin.line)])
        }
        var errors: [ConfigurationError] = []
        var invalidKeys: Set<String> = []
        var config = PosternConfiguration()

        for section in table.keys {
            guard let keys = schema[section] else {
                errors.append(ConfigurationError(key: section, message: "unknown section; known sections: \(schema.keys.sorted().joined(separator: ", "))"))
                continue
            }
            guard let sectionTable = table[section]?.table else {
                errors.append(ConfigurationError(key: section, message: "must be a table ([\(section)])"))
                continue
            }
            for key in sectionTable.keys {
                let fullKey = "\(section).\(key)"
                guard let kind = keys[key] else {
                    errors.append(ConfigurationError(key: fullKey, message: "unknown key; known keys of [\(section)]: \(keys.keys.sorted().joined(separator: ", "))"))
                    continue
                }
                if let problem = check(sectionTable[key]!, kind: kind) {
                    errors.append(ConfigurationError(key: fullKey, message: problem))
                    invalidKeys.insert(fullKey)
                }
            }
        }
        // Values that failed their type check read as absent below, so the rules that tie keys
        // together still run and every problem is reported at once.

        func value(_ section: String, _ key: String) -> (any TOMLValueConvertible)? {
            if invalidKeys.contains("\(section).\(key)") { return nil }
            let found: (any TOMLValueConvertible)? = table[section]?.table?[key]
            return found
        }
        func string(_ s: String, _ k: String) -> String? { value(s, k)?.string }
        func hostPort(_ s: String, _ k: String) -> HostPort? { string(s, k).flatMap(HostPort.init) }
        func size(_ s: String, _ k: String) -> Int? { string(s, k).flatMap(ByteSize.parse) ?? value(s, k)?.int }
        func duration(_ s: String, _ k: String) -> Double? { string(s, k).flatMap(DurationText.parse) }
        func int(_ s: String, _ k: String) -> Int? { value(s, k)?.int }

        if let v = string("server", "domain") { config.domain = v.lowercased() }
        if let v = string("server", "internet_domain") { config.internetDomain = v.lowercased() }
        if let v = string("server", "data_dir") { config.dataDirectory = v }
        if let v = string("server", "operator") { config.operatorAccount = v }
        if let v = value("server", "reserved_names")?.array { config.extraReservedNames = v.compactMap { $0.string } }
        if let v = string("server", "log_level") { config.logLevel = v }
        if let v = hostPort("smtp", "listen") { config.smtpListen = v }
        if let v = size("smtp", "max_message_size") { config.maxMessageSize = v }
        if let v = int("smtp", "max_recipients") { config.maxRecipients = v }
        if let v = int("smtp", "max_sessions") { config.smtpMaxSessions = v }
        if let v = duration("smtp", "command_timeout") { config.commandTimeout = v }
        if let v = duration("smtp", "data_timeout") { config.dataTimeout = v }
        if let v = hostPort("pop3", "listen") { config.pop3Listen = v }
        if let v = int("pop3", "max_sessions") { config.pop3MaxSessions = v }
        if let v = duration("pop3", "autologout") { config.autologout = v }
        if let v = hostPort("web", "listen") { config.webListen = v }
        if let v = value("web", "enabled")?.bool { config.webEnabled = v }
        if let v = int("web", "signup_bits") { config.signupBits = v }
        if let v = duration("web", "session_idle") { config.webSessionIdle = v }
        if let v = hostPort("webmail", "listen") { config.webmailListen = v }
        if let v = hostPort("webmail", "smtp") { config.webmailSMTP = v }
        if let v = hostPort("webmail", "pop3") { config.webmailPOP3 = v }
        if let v = string("webmail", "data_dir") { config.webmailDataDirectory = v }
        if let v = duration("webmail", "session_idle") { config.webSessionIdle = v }
        if let v = int("webmail", "page_size") { config.webmailPageSize = v }
        if let v = hostPort("irc", "server") { config.ircServer = v }
        if let v = string("irc", "destination"), !v.isEmpty { config.ircDestination = v }
        if let v = string("irc", "nick") { config.ircNick = v }
        if let v = duration("irc", "notice_interval") { config.ircNoticeInterval = v }
        if let v = duration("irc", "gather") { config.ircGather = v }
        if let v = string("irc", "nickserv_password_file"), !v.isEmpty { config.ircNickServPasswordFile = v }
        if let v = string("scan", "clamd"), !v.isEmpty { config.scanClamd = v }
        if let v = string("scan", "on_unavailable") { config.scanAcceptUnscanned = v == "accept" }
        if let v = duration("scan", "timeout") { config.scanTimeout = v }
        if let v = string("webmail", "smtp_destination") { config.webmailSMTPDestination = v }
        if let v = string("webmail", "pop3_destination") { config.webmailPOP3Destination = v }
        if let v = size("limits", "mailbox_quota") { config.mailboxQuota = v }
        if let v = int("limits", "internet_recipients_per_day") { config.internetRecipientsPerDay = v }
        if let v = int("limits", "signups_per_hour") { config.signupsPerHour = v }
        if let v = duration("limits", "auth_penalty_base") { config.authPenaltyBase = v }
        if let v = duration("limits", "auth_penalty_max") { config.authPenaltyMax = v }
        if let v = duration("limits", "name_quarantine") { config.nameQuarantine = v }
        if let v = hostPort("relay", "address") { config.relay = v }
        if let v = string("relay", "username") { config.relayUsername = v }
        if let v = string("relay", "password_file") { config.relayPasswordFile = v }
        if let v = duration("relay", "timeout") { config.relayTimeout = v }
        if let v = string("delay", "default") { config.defaultDelayMode = v }
        if let v = duration("delay", "defer_min") { config.deferMin = v }
        if let v = duration("delay", "defer_max") { config.deferMax = v }
        if let v = value("delay", "batch_times")?.array {
            config.batchTimes = v.compactMap { $0.string }.compactMap { text in
                let parts = text.split(separator: ":").compactMap { Int($0) }
                return parts.count == 2 ? parts[0] * 60 + parts[1] : nil
            }
        }
        if let v = duration("delay", "pool_interval") { config.poolInterval = v }
        if let v = int("delay", "pool_min") { config.poolMin = v }
        if let v = value("delay", "pool_rate"), let d = v.double ?? v.int.map(Double.init) { config.poolRate = d }
        if let v = duration("queue", "retry_first") { config.retryFirst = v }
        if let v = duration("queue", "retry_max") { config.retryMax = v }
        if let v = duration("queue", "give_up_after") { config.giveUpAfter = v }
        if let v = duration("queue", "delay_notice_after") { config.delayNoticeAfter = v }
        if let v = int("hashcash", "bits") { config.hashcashBits = v }
        if let v = hostPort("i2p", "sam") { config.i2pSAM = v }
        if let v = value("i2p", "publish")?.array { config.i2pPublish = v.compactMap { $0.string?.lowercased() } }
        if let v = string("i2p", "keys_dir") { config.i2pKeysDirectory = v }
        if let v = value("i2p", "options")?.table {
            var options: [String: String] = [:]
            for key in v.keys {
                if let text = v[key]?.string { options[key] = text } else if let number = v[key]?.int { options[key] = String(number) }
            }
            config.i2pOptions = options
        }
        if let v = string("i2p", "gateway"), !v.isEmpty { config.i2pGateway = v }
        if let v = string("i2p", "core"), !v.isEmpty { config.i2pCore = v }
        if let v = hostPort("gateway", "mx_listen") { config.gatewayMXListen = v }
        if let v = hostPort("gateway", "core_listen") { config.gatewayCoreListen = v }
        if let v = hostPort("gateway", "core") { config.gatewayCore = v }
        if let v = hostPort("gateway", "resolver") { config.gatewayResolver = v }
        if let v = string("gateway", "hostname") { config.gatewayHostname = v.lowercased() }
        if let v = string("gateway", "username") { config.gatewayUsername = v }
        if let v = string("gateway", "password_file") { config.gatewayPasswordFile = v }
        if let v = string("gateway", "data_dir") { config.gatewayDataDirectory = v }
        if let v = string("gateway", "dkim_selector") { config.dkimSelector = v }
        if let v = string("gateway", "dkim_dir") { config.dkimDirectory = v }
        if let v = string("gateway", "dkim_key_file") { config.dkimKeyFile = v }
        if let v = string("gateway", "tls_cert"), !v.isEmpty { config.tlsCertificate = v }
        if let v = string("gateway", "tls_key"), !v.isEmpty { config.tlsKey = v }
        if let v = value("gateway", "dnsbl")?.array { config.dnsBlocklists = v.compactMap { $0.string?.lowercased() } }
        if let v = int("gateway", "mx_port") { config.mxPort = v }
        if let v = string("gateway", "outbound_address"), !v.isEmpty { config.outboundAddress = v }
        if let v = string("gateway", "outbound_tls") { config.outboundTLS = v }
        if let v = string("gateway", "spf_fail") { config.spfFail = v }
        if let v = size("gateway", "max_message_size") { config.gatewayMaxMessageSize = v }
        if let v = int("gateway", "max_recipients") { config.gatewayMaxRecipients = v }
        if let v = int("gateway", "max_sessions") { config.gatewayMaxSessions = v }
        if let v = int("gateway", "connections_per_minute") { config.connectionsPerMinute = v }
        if let v = int("hashcash", "recipients_per_stamp") { config.hashcashRecipients = v }

        // Rules that tie keys together or bound values.
        if EmailAddress("postmaster@\(config.domain)") == nil {
            errors.append(ConfigurationError(key: "server.domain", message: "\"\(config.domain)\" is not a valid mail domain"))
        }
        if !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(config.logLevel) {
            errors.append(ConfigurationError(key: "server.log_level", message: "expected trace, debug, info, notice, warning, error or critical"))
        }
        if config.maxMessageSize < 1024 {
            errors.append(ConfigurationError(key: "smtp.max_message_size", message: "must be at least 1KiB"))
        }
        if config.maxMessageSize > 1 << 30 {
            errors.append(ConfigurationError(key: "smtp.max_message_size", message: "must be at most 1GiB"))
        }
        if config.maxRecipients > 1000 {
            errors.append(ConfigurationError(key: "smtp.max_recipients", message: "must be at most 1000"))
        }
        if config.authPenaltyBase > config.authPenaltyMax {
            errors.append(ConfigurationError(key: "limits.auth_penalty_base", message: "must not exceed limits.auth_penalty_max"))
        }
        if config.smtpListen.port != 0 && config.smtpListen == config.pop3Listen {
            errors.append(ConfigurationError(key: "pop3.listen", message: "is the same address as smtp.listen"))
        }
        if let mode = string("delay", "default"), !["none", "defer", "batch", "pool"].contains(mode) {
            errors.append(ConfigurationError(key: "delay.default", message: "expected none, defer, batch or pool"))
        }
        // Defaults as in SPEC DELAY-1, so one key given alone is checked against the other's default.
        if config.deferMin > config.deferMax {
            errors.append(ConfigurationError(key: "delay.defer_min", message: "must not exceed delay.defer_max (\(Int(config.deferMax)) s)"))
        }
        if config.deferMax > 30 * 86400 {
            errors.append(ConfigurationError(key: "delay.defer_max", message: "must be at most 30 days"))
        }
        if value("delay", "batch_times")?.array?.isEmpty == true {
            errors.append(ConfigurationError(key: "delay.batch_times", message: "needs at least one time"))
        }
        if config.poolInterval < 1 {
            errors.append(ConfigurationError(key: "delay.pool_interval", message: "must be at least 1 s"))
        }
        if config.retryFirst < 1 {
            errors.append(ConfigurationError(key: "queue.retry_first", message: "must be at least 1 s"))
        }
        if config.retryFirst > config.retryMax {
            errors.append(ConfigurationError(key: "queue.retry_first", message: "must not exceed queue.retry_max"))
        }
        if config.retryFirst >= config.giveUpAfter {
            errors.append(ConfigurationError(key: "queue.give_up_after", message: "must be longer than queue.retry_first, or no retry ever happens"))
        }
        if config.delayNoticeAfter >= config.giveUpAfter {
            errors.append(ConfigurationError(key: "queue.delay_notice_after", message: "must be shorter than queue.give_up_after"))
        }
        if !(1...3600).contains(config.relayTimeout) {
            errors.append(ConfigurationError(key: "relay.timeout", message: "must be between 1s and 1h"))
        }
        if config.giveUpAfter > 30 * 86400 {
            errors.append(ConfigurationError(key: "queue.give_up_after", message: "must be at most 30 days"))
        }
        if config.poolInterval > 7 * 86400 {
            errors.append(ConfigurationError(key: "delay.pool_interval", message: "must be at most 7 days"))
        }
        if !(8...40).contains(config.hashcashBits) {
            errors.append(ConfigurationError(key: "hashcash.bits", message: "must be between 8 and 40"))
        }
        for (key, value) in [("webmail.smtp_destination", config.webmailSMTPDestination), ("webmail.pop3_destination", config.webmailPOP3Destination)] {
            guard let value else { continue }
            if config.i2pSAM == nil {
                errors.append(ConfigurationError(key: key, message: "needs [i2p] sam: destinations are reached through the router's SAM bridge"))
            } else if !Self.looksLikeDestination(value) {
                errors.append(ConfigurationError(key: key, message: "\"\(value.prefix(40))\" is not a .b32.i2p name or a base64 destination"))
            }
        }
        if !(4...32).contains(config.signupBits) {
            errors.append(ConfigurationError(key: "web.signup_bits", message: "must be between 4 and 32 (a browser mints the stamp)"))
        }
        if config.relayUsername != nil && config.relayPasswordFile == nil {
            errors.append(ConfigurationError(key: "relay.password_file", message: "is needed when relay.username is set"))
        }
        if (config.relayUsername != nil || config.relayPasswordFile != nil) && !config.hasGateway {
            errors.append(ConfigurationError(key: "relay.address", message: "is needed when relay.username or relay.password_file is set (or i2p.gateway)"))
        }
        for service in config.i2pPublish where !["smtp", "pop3", "web"].contains(service) {
            errors.append(ConfigurationError(key: "i2p.publish", message: "unknown service \"\(service)\"; expected smtp, pop3 or web"))
        }
        for (key, name) in [("i2p.gateway", config.i2pGateway), ("i2p.core", config.i2pCore)] {
            guard let name else { continue }
            if config.i2pSAM == nil {
                errors.append(ConfigurationError(key: key, message: "needs i2p.sam: the link runs through the SAM bridge"))
            }
            if !Self.looksLikeDestination(name) {
                errors.append(ConfigurationError(key: key, message: "\"\(name.prefix(40))\" is not a .b32.i2p name or a base64 destination"))
            }
        }
        if let options = value("i2p", "options")?.table {
            for key in options.keys {
                let value = options[key]?.string ?? options[key]?.int.map(String.init)
                // What SESSION CREATE and tunnels.conf can carry: option names, plain values, and
                // never one of the command's own fields.
                let nameOK = !key.isEmpty && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_") }
                if value == nil || !nameOK || ["STYLE", "ID", "DESTINATION", "SIGNATURE_TYPE", "SILENT"].contains(key.uppercased())
                    || value!.contains(where: { $0 == " " || $0 == "\"" || $0.isNewline || !$0.isASCII }) {
                    errors.append(ConfigurationError(key: "i2p.options.\(key)", message: "expected an I2CP option name with a plain string or number"))
                }
            }
        }
        if (config.tlsCertificate == nil) != (config.tlsKey == nil) {
            errors.append(ConfigurationError(key: config.tlsCertificate == nil ? "gateway.tls_cert" : "gateway.tls_key",
                                             message: "tls_cert and tls_key go together: give both or neither"))
        }
        if !["may", "encrypt"].contains(config.outboundTLS) {
            errors.append(ConfigurationError(key: "gateway.outbound_tls", message: "expected may or encrypt"))
        }
        if !["reject", "mark"].contains(config.spfFail) {
            errors.append(ConfigurationError(key: "gateway.spf_fail", message: "expected reject or mark"))
        }
        if let address = config.outboundAddress, (try? SocketAddress(ipAddress: address, port: 0)) == nil {
            errors.append(ConfigurationError(key: "gateway.outbound_address", message: "\"\(address)\" is not an IP address"))
        }
        if config.mxPort > 65535 {
            errors.append(ConfigurationError(key: "gateway.mx_port", message: "must be a port number (1 to 65535)"))
        }
        if config.gatewayMaxMessageSize < 1024 || config.gatewayMaxMessageSize > 1 << 30 {
            errors.append(ConfigurationError(key: "gateway.max_message_size", message: "must be between 1KiB and 1GiB"))
        }
        if config.gatewayMaxRecipients > 1000 {
            errors.append(ConfigurationError(key: "gateway.max_recipients", message: "must be at most 1000"))
        }
        if let hostname = config.gatewayHostname, EmailAddress("postmaster@\(hostname)") == nil || !hostname.contains(".") {
            errors.append(ConfigurationError(key: "gateway.hostname", message: "\"\(hostname)\" is not a host name such as mx.i2pmail.org"))
        }
        if let destination = config.ircDestination {
            if config.i2pSAM == nil {
                errors.append(ConfigurationError(key: "irc.destination", message: "needs [i2p] sam: the IRC server is reached through the SAM bridge"))
            } else if !Self.looksLikeDestination(destination) {
                errors.append(ConfigurationError(key: "irc.destination", message: "\"\(destination.prefix(40))\" is not a .b32.i2p name or a base64 destination"))
            }
        }
        if !IRCCaseMapping.isValidNick(config.ircNick) {
            errors.append(ConfigurationError(key: "irc.nick", message: "not a valid IRC nickname (RFC 2812 2.3.1)"))
        }
        if let clamd = config.scanClamd, ClamdAddress(clamd) == nil {
            errors.append(ConfigurationError(key: "scan.clamd", message: "expected host:port or unix:/path/to/clamd.ctl"))
        }
        if let policy = string("scan", "on_unavailable"), !["tempfail", "accept"].contains(policy) {
            errors.append(ConfigurationError(key: "scan.on_unavailable", message: "expected tempfail or accept"))
        }
        guard errors.isEmpty else { throw ConfigurationErrors(errors: errors) }
        return config
    }

    /// A `.b32.i2p` name (exactly 52 base32 characters: the SHA-256 of a destination; the longer
    /// b33 names of encrypted lease sets cannot be checked against a peer) or a base64 destination.
    static func looksLikeDestination(_ name: String) -> Bool {
        let lowered = name.lowercased()
        if lowered.hasSuffix(".b32.i2p") {
            let label = lowered.dropLast(8)
            return label.count == 52 && label.allSatisfy { ("a"..."z").contains($0) || ("2"..."7").contains($0) }
        }
        return I2PDestination(base64: name) != nil
    }

    /// Why a value does not fit its kind, or nil.
    private static func check(_ value: any TOMLValueConvertible, kind: Kind) -> String? {
        switch kind {
        case .string:
            return value.string == nil ? "expected a string" : nil
        case .hostPort:
            guard let text = value.string else { return "expected a string such as \"127.0.0.1:5587\"" }
            return HostPort(text) == nil ? "\"\(text)\" is not host:port (such as \"127.0.0.1:5587\")" : nil
        case .size:
            if let n = value.int { return n > 0 ? nil : "must be positive" }
            guard let text = value.string else { return "expected a size such as \"32MiB\" or \"50MB\"" }
            return ByteSize.parse(text).map { $0 > 0 ? nil : "must be positive" } ?? "\"\(text)\" is not a size such as \"32MiB\" or \"50MB\""
        case .duration:
            guard let text = value.string else { return "expected a duration such as \"2000s\", \"5m\", \"4h\" or \"5d\"" }
            return DurationText.parse(text) == nil ? "\"\(text)\" is not a duration such as \"2000s\", \"5m\", \"4h\" or \"5d\"" : nil
        case .positiveInt:
            guard let n = value.int else { return "expected a whole number" }
            return n > 0 ? nil : "must be positive"
        case .fraction:
            guard let d = value.double ?? value.int.map(Double.init) else { return "expected a number between 0 and 1" }
            return (d > 0 && d <= 1) ? nil : "must be greater than 0 and at most 1"
        case .bool:
            return value.bool == nil ? "expected true or false" : nil
        case .stringArray:
            guard let array = value.array else { return "expected an array of strings" }
            return array.allSatisfy { $0.string != nil } ? nil : "expected an array of strings"
        case .table:
            return value.table == nil ? "expected a table" : nil
        case .dailyTimes:
            guard let array = value.array else { return "expected an array of \"HH:MM\" times (UTC)" }
            for item in array {
                guard let text = item.string else { return "expected an array of \"HH:MM\" times (UTC)" }
                let parts = text.split(separator: ":")
                guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0..<24).contains(h), (0..<60).contains(m) else {
                    return "\"\(text)\" is not a time HH:MM"
                }
            }
            return nil
        }
    }
}
