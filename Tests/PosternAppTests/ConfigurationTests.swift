import Foundation
import Testing
@testable import PosternApp

/// OPS-3 / CLI-4: one TOML file, every key optional, validated with clear errors, all at once.
@Suite struct ConfigurationTests {
    /// The errors `parse` reports for `toml`, or an issue when it does not throw.
    static func errors(_ toml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigurationError] {
        do {
            _ = try PosternConfiguration.parse(toml)
            Issue.record("expected configuration errors", sourceLocation: sourceLocation)
            return []
        } catch let errors as ConfigurationErrors {
            return errors.errors
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            return []
        }
    }

    static func keys(_ toml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String] {
        errors(toml, sourceLocation: sourceLocation).map(\.key).sorted()
    }

    // MARK: Defaults

    @Test(arguments: ["", "\n\n# only a comment\n", "[server]\n[smtp]\n[pop3]\n[limits]\n"])
    func emptyFileGivesTheDefaults(toml: String) throws {
        #expect(try PosternConfiguration.parse(toml) == PosternConfiguration())
    }

    @Test func defaultsAreTheSpecsValues() {
        let config = PosternConfiguration()
        #expect(config.domain == "mail.i2p")
        #expect(config.internetDomain == "i2pmail.org")
        #expect(config.dataDirectory == "postern-data")
        #expect(config.operatorAccount == nil)
        #expect(config.extraReservedNames.isEmpty)
        #expect(config.logLevel == "info")
        #expect(config.smtpListen == HostPort(host: "127.0.0.1", port: 5587))
        #expect(config.pop3Listen == HostPort(host: "127.0.0.1", port: 5110))
        #expect(config.maxMessageSize == 32 * 1_048_576)
        #expect(config.maxRecipients == 100)
        #expect(config.commandTimeout == 300)
        #expect(config.dataTimeout == 600)
        #expect(config.autologout == 600)
        #expect(config.mailboxQuota == 50_000_000)
        #expect(config.internetRecipientsPerDay == 20)
        #expect(config.signupsPerHour == 10)
        #expect(config.authPenaltyBase == 1)
        #expect(config.authPenaltyMax == 15)
        #expect(config.nameQuarantine == 180 * 86400)
    }

    /// The whole example of SPEC CLI-4 is a valid file.
    static let specExample = """
        [server]
        domain = "mail.i2p"
        internet_domain = "i2pmail.org"
        data_dir = "postern-data"

        [smtp]
        listen = "127.0.0.1:5587"
        max_message_size = "32MiB"
        max_recipients = 100

        [pop3]
        listen = "127.0.0.1:5110"

        [web]
        listen = "127.0.0.1:5080"

        [metrics]
        listen = "127.0.0.1:5090"

        [limits]
        mailbox_quota = "50MB"
        internet_recipients_per_day = 20
        signups_per_hour = 10

        [delay]
        default = "defer"              # none | defer | batch | pool
        defer_min = "2000s"
        defer_max = "4000s"
        batch_times = ["00:00", "12:00"]   # UTC
        pool_interval = "15m"
        pool_min = 5
        pool_rate = 0.65

        [queue]
        retry_first = "5m"
        give_up_after = "5d"
        delay_notice_after = "4h"

        [relay]                        # next hop for Internet-bound mail: the gateway
        address = "127.0.0.1:5026"
        username = "core"
        password_file = "relay.secret"

        [scan]
        clamd = "127.0.0.1:3310"       # or "unix:/run/clamav/clamd.ctl"
        on_unavailable = "tempfail"    # or "accept"

        [irc]
        server = "127.0.0.1:6668"
        nick = "postman"
        notice_interval = "5m"
        nickserv_password_file = ""

        [i2p]
        sam = "127.0.0.1:7656"
        publish = ["smtp", "pop3", "web"]
        keys_dir = "i2p-keys"
        [i2p.options]                  # passed through to SESSION CREATE; defaults suit the public network
        "inbound.length" = "3"
        "outbound.length" = "3"

        [gateway]                      # read by `postern gateway`
        mx_listen = "127.0.0.1:5025"
        core_listen = "127.0.0.1:5026"
        core = "127.0.0.1:5587"
        resolver = "127.0.0.1:53"
        dkim_selector = "postern"
        dkim_key_file = "dkim.key"
        tls_cert = ""
        tls_key = ""
        dnsbl = []

        [webmail]                      # read by `postern webmail`
        listen = "127.0.0.1:5081"
        smtp = "127.0.0.1:7659"
        pop3 = "127.0.0.1:7660"
        data_dir = "webmail-data"
        """

    /// Every value of SPEC's example is the default, except the relay, clamd and the IRC server,
    /// which have none (no `[relay]`: no Internet mail; no `[scan]`: no scanning; no `[irc]`: no
    /// notices).
    @Test func specExampleIsValidAndMeansTheDefaults() throws {
        var expected = PosternConfiguration()
        expected.relay = HostPort(host: "127.0.0.1", port: 5026)
        expected.relayUsername = "core"
        expected.relayPasswordFile = "relay.secret"
        // An [i2p] section with a SAM bridge turns I2P on (the options are the example's own).
        expected.i2pSAM = HostPort(host: "127.0.0.1", port: 7656)
        expected.i2pOptions = ["inbound.length": "3", "outbound.length": "3"]
        expected.scanClamd = "127.0.0.1:3310"
        expected.ircServer = HostPort(host: "127.0.0.1", port: 6668)
        #expect(try PosternConfiguration.parse(Self.specExample) == expected)
        #expect(PosternConfiguration().scanClamd == nil && PosternConfiguration().ircServer == nil)
        #expect(PosternConfiguration().relay == nil)
    }

    @Test func everyGatewayKeyIsRead() throws {
        let config = try PosternConfiguration.parse("""
            [server]
            internet_domain = "Example.ORG"
            [gateway]
            mx_listen = "0.0.0.0:25"
            core_listen = "10.8.0.2:5026"
            core = "10.8.0.1:5587"
            resolver = "127.0.0.53:53"
            hostname = "MX.example.org"
            username = "link"
            password_file = "link.secret"
            data_dir = "/var/lib/gw"
            dkim_selector = "k1"
            dkim_dir = "/etc/dkim"
            dkim_key_file = "/etc/dkim/extra.key"
            tls_cert = "mx.crt"
            tls_key = "mx.key"
            dnsbl = ["Zen.Example"]
            mx_port = 2525
            outbound_address = "203.0.113.25"
            outbound_tls = "encrypt"
            spf_fail = "mark"
            max_message_size = "10MiB"
            max_recipients = 50
            max_sessions = 20
            connections_per_minute = 7
            """)
        #expect(config.gatewayMXListen == HostPort(host: "0.0.0.0", port: 25))
        #expect(config.gatewayCoreListen == HostPort(host: "10.8.0.2", port: 5026))
        #expect(config.gatewayCore == HostPort(host: "10.8.0.1", port: 5587))
        #expect(config.gatewayResolver == HostPort(host: "127.0.0.53", port: 53))
        #expect(config.mxHostname == "mx.example.org")
        #expect(config.gatewayUsername == "link" && config.gatewayPasswordFile == "link.secret")
        #expect(config.gatewayDataDirectory == "/var/lib/gw")
        #expect(config.dkimSelector == "k1" && config.dkimDirectory == "/etc/dkim" && config.dkimKeyFile == "/etc/dkim/extra.key")
        #expect(config.tlsCertificate == "mx.crt" && config.tlsKey == "mx.key")
        #expect(config.dnsBlocklists == ["zen.example"])
        #expect(config.mxPort == 2525 && config.outboundAddress == "203.0.113.25")
        #expect(config.outboundTLS == "encrypt" && config.spfFail == "mark")
        #expect(config.gatewayMaxMessageSize == 10 * 1_048_576 && config.gatewayMaxRecipients == 50)
        #expect(config.gatewayMaxSessions == 20 && config.connectionsPerMinute == 7)
        // Without [gateway] hostname, the MX is mx.<internet domain>.
        #expect(try PosternConfiguration.parse("[server]\ninternet_domain = \"example.org\"").mxHostname == "mx.example.org")
    }

    @Test func everyQueueDelayAndHashcashKeyIsRead() throws {
        let config = try PosternConfiguration.parse("""
            [delay]
            default = "batch"
            defer_min = "3s"
            defer_max = "6s"
            batch_times = ["06:30", "18:00"]
            pool_interval = "10s"
            pool_min = 2
            pool_rate = 0.5

            [queue]
            retry_first = "2s"
            retry_max = "8s"
            give_up_after = "1m"
            delay_notice_after = "20s"

            [relay]
            address = "127.0.0.1:2525"
            username = "core"
            password_file = "secret"
            timeout = "3s"

            [hashcash]
            bits = 12
            recipients_per_stamp = 3
            """)
        #expect(config.defaultDelayMode == "batch")
        #expect(config.deferMin == 3 && config.deferMax == 6)
        #expect(config.batchTimes == [390, 1080])
        #expect(config.poolInterval == 10 && config.poolMin == 2 && config.poolRate == 0.5)
        #expect(config.retryFirst == 2 && config.retryMax == 8 && config.giveUpAfter == 60 && config.delayNoticeAfter == 20)
        #expect(config.relay == HostPort(host: "127.0.0.1", port: 2525) && config.relayUsername == "core")
        #expect(config.relayPasswordFile == "secret" && config.relayTimeout == 3)
        #expect(config.hashcashBits == 12 && config.hashcashRecipients == 3)
    }

    // MARK: Every key

    @Test func everyKeyIsRead() throws {
        let config = try PosternConfiguration.parse("""
            [server]
            domain = "Example.I2P"
            internet_domain = "Example.ORG"
            data_dir = "/var/lib/postern"
            operator = "alice"
            reserved_names = ["staff", "support"]
            log_level = "debug"

            [smtp]
            listen = "0.0.0.0:2525"
            max_message_size = "10MB"
            max_recipients = 50
            max_sessions = 20
            command_timeout = "2m"
            data_timeout = "15m"

            [pop3]
            listen = "[::1]:1110"
            max_sessions = 30
            autologout = "20m"

            [limits]
            mailbox_quota = "1GiB"
            internet_recipients_per_day = 5
            signups_per_hour = 3
            auth_penalty_base = "500ms"
            auth_penalty_max = "30s"
            name_quarantine = "30d"
            """)
        #expect(config.domain == "example.i2p")
        #expect(config.internetDomain == "example.org")
        #expect(config.dataDirectory == "/var/lib/postern")
        #expect(config.operatorAccount == "alice")
        #expect(config.extraReservedNames == ["staff", "support"])
        #expect(config.logLevel == "debug")
        #expect(config.smtpListen == HostPort(host: "0.0.0.0", port: 2525))
        #expect(config.maxMessageSize == 10_000_000)
        #expect(config.maxRecipients == 50)
        #expect(config.smtpMaxSessions == 20)
        #expect(config.commandTimeout == 120)
        #expect(config.dataTimeout == 900)
        #expect(config.pop3Listen == HostPort(host: "::1", port: 1110))
        #expect(config.pop3MaxSessions == 30)
        #expect(config.autologout == 1200)
        #expect(config.mailboxQuota == 1_073_741_824)
        #expect(config.internetRecipientsPerDay == 5)
        #expect(config.signupsPerHour == 3)
        #expect(config.authPenaltyBase == 0.5)
        #expect(config.authPenaltyMax == 30)
        #expect(config.nameQuarantine == 30 * 86400)
    }

    @Test func sizesMayBePlainIntegers() throws {
        let config = try PosternConfiguration.parse("[smtp]\nmax_message_size = 2048\n[limits]\nmailbox_quota = 123456\n")
        #expect(config.maxMessageSize == 2048)
        #expect(config.mailboxQuota == 123_456)
    }

    @Test(arguments: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
    func everyLogLevel(level: String) throws {
        #expect(try PosternConfiguration.parse("[server]\nlog_level = \"\(level)\"\n").logLevel == level)
    }

    @Test(arguments: ["none", "defer", "batch", "pool"])
    func everyDelayMode(mode: String) throws {
        _ = try PosternConfiguration.parse("[delay]\ndefault = \"\(mode)\"\n")
    }

    @Test(arguments: ["tempfail", "accept"])
    func everyScanPolicy(policy: String) throws {
        _ = try PosternConfiguration.parse("[scan]\non_unavailable = \"\(policy)\"\n")
    }

    @Test func boundaryValuesAreAccepted() throws {
        let config = try PosternConfiguration.parse("""
            [smtp]
            max_message_size = "1KiB"
            max_recipients = 1000
            [delay]
            defer_min = "1h"
            defer_max = "3600s"
            pool_rate = 1
            batch_times = ["00:00", "23:59"]
            [limits]
            auth_penalty_base = "15s"
            auth_penalty_max = "15s"
            """)
        #expect(config.maxMessageSize == 1024)
        #expect(config.maxRecipients == 1000)
        #expect(try PosternConfiguration.parse("[smtp]\nmax_message_size = \"1GiB\"\n").maxMessageSize == 1 << 30)
        #expect(try PosternConfiguration.parse("[smtp]\nmax_message_size = \"1GB\"\n").maxMessageSize == 1_000_000_000)
    }

    @Test func port0MayBeSharedBySMTPAndPOP3() throws {
        // Port 0 means "any free port", so two listeners asking for it do not clash.
        _ = try PosternConfiguration.parse("[smtp]\nlisten = \"127.0.0.1:0\"\n[pop3]\nlisten = \"127.0.0.1:0\"\n")
    }

    // MARK: Error kinds

    @Test func unknownSection() throws {
        let errors = Self.errors("[smtpd]\nlisten = \"127.0.0.1:25\"\n")
        let error = try #require(errors.first)
        #expect(errors.count == 1)
        #expect(error.key == "smtpd")
        #expect(error.message.contains("unknown section"))
        #expect(error.message.contains("smtp"))  // lists the known ones
    }

    @Test func topLevelKeyIsAnUnknownSection() {
        #expect(Self.keys("domain = \"mail.i2p\"\n") == ["domain"])
    }

    @Test func unknownKey() throws {
        let errors = Self.errors("[smtp]\nport = 25\n")
        let error = try #require(errors.first)
        #expect(errors.count == 1)
        #expect(error.key == "smtp.port")
        #expect(error.message.contains("unknown key"))
        #expect(error.message.contains("listen"))
        #expect(error.description.hasPrefix("smtp.port: unknown key"))
    }

    @Test func sectionThatIsNotATable() throws {
        let error = try #require(Self.errors("server = \"mail.i2p\"\n").first)
        #expect(error.key == "server")
        #expect(error.message.contains("table"))
    }

    @Test(arguments: [
        // wrong types
        ("[server]\ndomain = 5", "server.domain", "expected a string"),
        ("[server]\nreserved_names = \"staff\"", "server.reserved_names", "expected an array of strings"),
        ("[server]\nreserved_names = [\"a\", 1]", "server.reserved_names", "expected an array of strings"),
        ("[smtp]\nlisten = 5587", "smtp.listen", "expected a string"),
        ("[smtp]\nmax_recipients = \"100\"", "smtp.max_recipients", "expected a whole number"),
        ("[smtp]\nmax_recipients = 1.5", "smtp.max_recipients", "expected a whole number"),
        ("[smtp]\nmax_recipients = true", "smtp.max_recipients", "expected a whole number"),
        ("[smtp]\nmax_message_size = true", "smtp.max_message_size", "expected a size"),
        ("[smtp]\ncommand_timeout = 300", "smtp.command_timeout", "expected a duration"),
        ("[delay]\npool_rate = \"high\"", "delay.pool_rate", "expected a number between 0 and 1"),
        ("[delay]\nbatch_times = \"12:00\"", "delay.batch_times", "expected an array"),
        ("[delay]\nbatch_times = [1200]", "delay.batch_times", "expected an array"),
        ("[i2p]\noptions = \"x\"", "i2p.options", "expected a table"),
        ("[i2p]\npublish = [\"smtp\", 2]", "i2p.publish", "expected an array of strings"),
        // bad values
        ("[smtp]\nlisten = \"localhost\"", "smtp.listen", "is not host:port"),
        ("[smtp]\nlisten = \":5587\"", "smtp.listen", "is not host:port"),
        ("[smtp]\nlisten = \"127.0.0.1:65536\"", "smtp.listen", "is not host:port"),
        ("[smtp]\nlisten = \"127.0.0.1:smtp\"", "smtp.listen", "is not host:port"),
        ("[smtp]\nlisten = \"[::1]\"", "smtp.listen", "is not host:port"),
        ("[relay]\naddress = \"gateway\"", "relay.address", "is not host:port"),
        ("[smtp]\nmax_message_size = \"32 potatoes\"", "smtp.max_message_size", "is not a size"),
        ("[smtp]\nmax_message_size = \"1.5MB\"", "smtp.max_message_size", "is not a size"),
        ("[smtp]\nmax_message_size = \"99999999999999GiB\"", "smtp.max_message_size", "is not a size"),
        ("[smtp]\nmax_message_size = 0", "smtp.max_message_size", "must be positive"),
        ("[smtp]\nmax_message_size = -5", "smtp.max_message_size", "must be positive"),
        ("[limits]\nmailbox_quota = \"0MB\"", "limits.mailbox_quota", "must be positive"),
        ("[smtp]\nmax_recipients = 0", "smtp.max_recipients", "must be positive"),
        ("[smtp]\nmax_recipients = -1", "smtp.max_recipients", "must be positive"),
        ("[smtp]\ndata_timeout = \"soon\"", "smtp.data_timeout", "is not a duration"),
        ("[queue]\ngive_up_after = \"5 weeks\"", "queue.give_up_after", "is not a duration"),
        ("[queue]\nretry_first = \"-5m\"", "queue.retry_first", "is not a duration"),
        ("[delay]\npool_rate = 0", "delay.pool_rate", "greater than 0"),
        ("[delay]\npool_rate = 1.5", "delay.pool_rate", "at most 1"),
        ("[delay]\npool_rate = -0.1", "delay.pool_rate", "greater than 0"),
        ("[delay]\nbatch_times = [\"24:00\"]", "delay.batch_times", "is not a time"),
        ("[delay]\nbatch_times = [\"12:60\"]", "delay.batch_times", "is not a time"),
        ("[delay]\nbatch_times = [\"noon\"]", "delay.batch_times", "is not a time"),
        ("[delay]\nbatch_times = [\"12:00:00\"]", "delay.batch_times", "is not a time"),
        ("[delay]\nbatch_times = [\"-1:00\"]", "delay.batch_times", "is not a time"),
        // rules that bound or tie values
        ("[server]\ndomain = \"bad..domain\"", "server.domain", "is not a valid mail domain"),
        ("[server]\ndomain = \"-bad.i2p\"", "server.domain", "is not a valid mail domain"),
        ("[server]\nlog_level = \"verbose\"", "server.log_level", "expected trace, debug"),
        ("[server]\nlog_level = \"INFO\"", "server.log_level", "expected trace, debug"),
        ("[smtp]\nmax_message_size = 1023", "smtp.max_message_size", "at least 1KiB"),
        ("[smtp]\nmax_message_size = \"2GiB\"", "smtp.max_message_size", "must be at most 1GiB"),
        ("[smtp]\nmax_recipients = 1001", "smtp.max_recipients", "at most 1000"),
        ("[limits]\nauth_penalty_base = \"20s\"", "limits.auth_penalty_base", "must not exceed limits.auth_penalty_max"),
        ("[limits]\nauth_penalty_base = \"2s\"\nauth_penalty_max = \"1s\"", "limits.auth_penalty_base", "must not exceed"),
        ("[smtp]\nlisten = \"127.0.0.1:2000\"\n[pop3]\nlisten = \"127.0.0.1:2000\"", "pop3.listen", "same address as smtp.listen"),
        ("[pop3]\nlisten = \"127.0.0.1:5587\"", "pop3.listen", "same address as smtp.listen"),
        ("[delay]\ndefault = \"sometimes\"", "delay.default", "expected none, defer, batch or pool"),
        ("[delay]\ndefer_min = \"2h\"\ndefer_max = \"1h\"", "delay.defer_min", "must not exceed delay.defer_max"),
        ("[scan]\non_unavailable = \"drop\"", "scan.on_unavailable", "expected tempfail or accept"),
        // the gateway (issue 6)
        ("[gateway]\ntls_cert = \"mx.crt\"", "gateway.tls_key", "go together"),
        ("[gateway]\ntls_key = \"mx.key\"", "gateway.tls_cert", "go together"),
        ("[gateway]\noutbound_tls = \"always\"", "gateway.outbound_tls", "expected may or encrypt"),
        ("[gateway]\nspf_fail = \"drop\"", "gateway.spf_fail", "expected reject or mark"),
        ("[gateway]\noutbound_address = \"mx.example\"", "gateway.outbound_address", "is not an IP address"),
        ("[gateway]\nmx_port = 70000", "gateway.mx_port", "must be a port number"),
        ("[gateway]\nmax_message_size = 100", "gateway.max_message_size", "between 1KiB and 1GiB"),
        ("[gateway]\nmax_recipients = 5000", "gateway.max_recipients", "at most 1000"),
        ("[gateway]\nhostname = \"localhost\"", "gateway.hostname", "is not a host name"),
        ("[gateway]\ndnsbl = \"zen.example\"", "gateway.dnsbl", "expected an array of strings"),
        ("[gateway]\nconnections_per_minute = 0", "gateway.connections_per_minute", "must be positive"),
        // impossible delays and retries (issue 5: refused by check-config)
        // defer_min alone is compared with the default defer_max (4000 s, CLI-4).
        ("[delay]\ndefer_min = \"5000s\"", "delay.defer_min", "must not exceed delay.defer_max (4000 s)"),
        ("[delay]\ndefer_max = \"31d\"", "delay.defer_max", "at most 30 days"),
        ("[delay]\nbatch_times = []", "delay.batch_times", "at least one time"),
        ("[queue]\nretry_first = \"5h\"", "queue.retry_first", "must not exceed queue.retry_max"),
        ("[queue]\ngive_up_after = \"1m\"\ndelay_notice_after = \"30s\"", "queue.give_up_after", "longer than queue.retry_first"),
        ("[queue]\ndelay_notice_after = \"6d\"", "queue.delay_notice_after", "shorter than queue.give_up_after"),
        ("[hashcash]\nbits = 50", "hashcash.bits", "between 8 and 40"),
        ("[relay]\naddress = \"127.0.0.1:25\"\nusername = \"core\"", "relay.password_file", "needed when relay.username"),
        ("[relay]\npassword_file = \"x\"", "relay.address", "needed when relay.username or relay.password_file"),
    ])
    func oneError(toml: String, key: String, fragment: String) {
        let errors = Self.errors(toml)
        #expect(errors.count == 1, "\(errors)")
        #expect(errors.first?.key == key)
        #expect(errors.first?.message.contains(fragment) == true, "\(errors.first?.message ?? "")")
        #expect(errors.first?.line == nil)
    }

    @Test func tomlSyntaxErrorNamesTheLine() throws {
        let errors = Self.errors("[server]\ndomain = \"mail.i2p\"\nthis is not toml\n")
        let error = try #require(errors.first)
        #expect(errors.count == 1)
        #expect(error.key == "")
        #expect(error.line == 3)
        #expect(error.message.hasPrefix("TOML syntax error"))
        #expect(error.description.hasPrefix("line 3: TOML syntax error"))
    }

    @Test(arguments: [
        ("[server\ndomain = \"x\"\n", 1),
        ("[smtp]\nlisten = \"127.0.0.1:1\"\nlisten = \"127.0.0.1:2\"\n", 3),
        ("\n\n\n\n[smtp]\nmax_recipients = \n", 6),
        ("[smtp]\nlisten = 'unterminated\n", 2),
    ])
    func syntaxErrorLines(toml: String, line: Int) {
        let errors = Self.errors(toml)
        #expect(errors.count == 1)
        #expect(errors.first?.line == line)
    }

    // MARK: All errors at once

    @Test func everyStructuralErrorIsReportedAtOnce() {
        let keys = Self.keys("""
            [smtpd]
            x = 1
            [smtp]
            listen = "nowhere"
            port = 25
            max_recipients = "many"
            [pop3]
            listen = 5110
            [limits]
            mailbox_quota = "huge"
            name_quarantine = "forever"
            [delay]
            pool_rate = 2
            batch_times = ["25:00"]
            """)
        #expect(keys == [
            "delay.batch_times", "delay.pool_rate", "limits.mailbox_quota", "limits.name_quarantine",
            "pop3.listen", "smtp.listen", "smtp.max_recipients", "smtp.port", "smtpd",
        ])
    }

    @Test func everyValueRuleErrorIsReportedAtOnce() {
        let keys = Self.keys("""
            [server]
            domain = "no..domain"
            log_level = "loud"
            [smtp]
            listen = "127.0.0.1:7000"
            max_message_size = 100
            max_recipients = 5000
            [pop3]
            listen = "127.0.0.1:7000"
            [limits]
            auth_penalty_base = "1h"
            [delay]
            default = "never"
            defer_min = "3h"
            defer_max = "2h"
            [scan]
            on_unavailable = "ignore"
            """)
        #expect(keys == [
            "delay.default", "delay.defer_min", "limits.auth_penalty_base", "pop3.listen", "scan.on_unavailable",
            "server.domain", "server.log_level", "smtp.max_message_size", "smtp.max_recipients",
        ])
    }

    /// A file with a type error and a bad value must list both, so the operator fixes everything
    /// in one pass (OPS-3: "validated at start with clear errors"; `parse` throws "listing every problem").
    @Test func structuralAndValueErrorsAreReportedTogether() {
        let keys = Self.keys("""
            [server]
            log_level = "loud"
            [smtp]
            port = 25
            """)
        #expect(keys == ["server.log_level", "smtp.port"])
    }

    @Test func errorsDescribeThemselves() {
        let errors = ConfigurationErrors(errors: [
            ConfigurationError(key: "smtp.port", message: "unknown key"),
            ConfigurationError(key: "", message: "TOML syntax error: x", line: 7),
            ConfigurationError(key: "a.b", message: "bad", line: 2),
        ])
        #expect(errors.description == "smtp.port: unknown key\nline 7: TOML syntax error: x\nline 2: a.b: bad")
    }

    // MARK: Files

    @Test func loadReadsAFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("postern-config-\(UUID().uuidString).toml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data("[smtp]\nlisten = \"127.0.0.1:2525\"\n".utf8).write(to: URL(fileURLWithPath: path))
        #expect(try PosternConfiguration.load(path: path).smtpListen == HostPort(host: "127.0.0.1", port: 2525))
    }

    @Test func loadOfAMissingFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("postern-missing-\(UUID().uuidString).toml").path
        #expect {
            _ = try PosternConfiguration.load(path: path)
        } throws: { error in
            guard let errors = error as? ConfigurationErrors, errors.errors.count == 1 else { return false }
            return errors.errors[0].message.contains("cannot read") && errors.errors[0].message.contains(path)
        }
    }

    @Test func loadOfANonUTF8File() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("postern-latin1-\(UUID().uuidString).toml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data([0x5b, 0x73, 0x5d, 0x0a, 0xff, 0xfe, 0x0a]).write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try PosternConfiguration.load(path: path)
        } throws: { error in
            (error as? ConfigurationErrors)?.errors.first?.message.contains("UTF-8") == true
        }
    }
}

@Suite struct HostPortTests {
    @Test(arguments: [
        ("127.0.0.1:5587", "127.0.0.1", 5587),
        ("localhost:0", "localhost", 0),
        ("example.i2p:65535", "example.i2p", 65535),
        ("[::1]:5587", "::1", 5587),
        ("[2001:db8::1]:25", "2001:db8::1", 25),
    ])
    func parses(text: String, host: String, port: Int) {
        #expect(HostPort(text) == HostPort(host: host, port: port))
    }

    @Test(arguments: ["", "localhost", ":25", "host:", "host:abc", "host:65536", "host:-1", "[::1]", "[::1]5587", "[::1]:", "[]:25", "[::1:25"])
    func refuses(text: String) {
        #expect(HostPort(text) == nil)
    }

    @Test func descriptionBracketsIPv6() {
        #expect(HostPort(host: "127.0.0.1", port: 5587).description == "127.0.0.1:5587")
        #expect(HostPort(host: "::1", port: 5110).description == "[::1]:5110")
        #expect(HostPort(HostPort(host: "::1", port: 5110).description) == HostPort(host: "::1", port: 5110))
    }
}
