import Foundation
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
import Privacy
import Scan
import SMTP

/// DNS as the exchange needs it: SPF's lookups, DKIM keys, blocklist queries.
public typealias ExchangeResolver = SPFResolver & DKIMKeyLookup

/// The MX of the Internet domain (GW-2), as an SMTP backend in the exchange role. Each
/// connection gets an `ExchangeSession`, which checks the client (blocklists, SPF), asks the core
/// about every recipient while the client waits (so an unknown user is refused in the dialogue:
/// no bounce is ever sent to a forged sender, and the gateway keeps no account list), and hands
/// accepted mail, sanitised (PRIV-5), to the core in the same breath: nothing is stored here.
public final class Exchange: SubmissionBackend {
    public struct Settings: Sendable {
        public var internetDomain: String
        public var coreDomain: String
        /// DNS blocklist zones (e.g. `zen.spamhaus.org`); a client listed in any is refused.
        public var blocklists: [String]
        /// RFC 7208 8.4: a `fail` is refused (550 5.7.23) when true, only recorded when false.
        public var rejectSPFFail: Bool
        /// SCAN-1 on the Internet side: clamd's verdict before the message goes to the core.
        public var scan: ScanPolicy?

        public init(internetDomain: String, coreDomain: String, blocklists: [String] = [], rejectSPFFail: Bool = true,
                    scan: ScanPolicy? = nil) {
            self.internetDomain = internetDomain.lowercased()
            self.coreDomain = coreDomain.lowercased()
            self.blocklists = blocklists
            self.rejectSPFFail = rejectSPFFail
            self.scan = scan
        }
    }

    let settings: Settings
    let resolver: any ExchangeResolver
    let core: CoreLink
    let logger: Logger

    public init(settings: Settings, resolver: any ExchangeResolver, core: CoreLink, logger: Logger) {
        self.settings = settings
        self.resolver = resolver
        self.core = core
        self.logger = logger
    }

    public func connection(from remote: SocketAddress?) -> any SubmissionBackend {
        ExchangeSession(exchange: self, client: remote?.ipAddress.flatMap(SPF.parseIP))
    }

    // The shared backend itself never runs a dialogue: every connection has its own session.
    public func authenticate(username: String, password: String) async -> SMTPAuthOutcome { .failure }
    public func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress]) async -> RecipientVerdict {
        .rejected(ExchangeReplies.localProblem)
    }
    public func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome {
        .rejected(ExchangeReplies.localProblem)
    }
}

enum ExchangeReplies {
    static let localProblem = SMTPReply(451, "4.3.0", "Temporary local problem, try again later")
}

/// One Internet client's connection to the exchange. Effects arrive one at a time (the SMTP
/// session waits for each); the actor guards against the close racing a check.
actor ExchangeSession: SubmissionBackend {
    private let exchange: Exchange
    /// The client's address: for SPF and blocklists, kept in memory for this connection only.
    private let client: [UInt8]?
    private var blocklistChecked = false
    private var listedIn: String?
    private var spf: SPFVerdict?
    private var link: SMTPClientSession?
    /// The transaction the core has seen so far on the link: its MAIL line and accepted RCPTs,
    /// replayed on a new link when the old one died while the client was sending.
    private var mailLine: String?
    private var recipientLines: [String] = []
    /// The link carried a transaction before: RSET first (whatever state the core is in).
    private var linkUsed = false
    private var closed = false

    init(exchange: Exchange, client: [UInt8]?) {
        self.exchange = exchange
        self.client = client
    }

    nonisolated func connectionClosed() {
        Task { await self.close() }
    }

    private func close() {
        closed = true
        drop()
    }

    func authenticate(username: String, password: String) async -> SMTPAuthOutcome { .failure }

    func checkSender(_ sender: EmailAddress?, helo: String) async -> RecipientVerdict {
        let settings = exchange.settings
        guard let client else { return .rejected(ExchangeReplies.localProblem) }
        // GW-2: operator-configured DNS blocklists, asked once per connection.
        if !blocklistChecked {
            listedIn = await Blocklist.firstListing(of: client, in: settings.blocklists, resolver: exchange.resolver, logger: exchange.logger)
            blocklistChecked = true
        }
        if let zone = listedIn {
            return .rejected(SMTPReply(550, "5.7.1", "Service refused: your address is listed by \(zone)"))
        }
        // Mail from the Internet never claims to come from inside: not from the core's domain
        // or any .i2p name (which SPF cannot vouch for).
        let senderDomain = sender?.domain.lowercased()
        if let sender, let senderDomain, senderDomain == settings.coreDomain || senderDomain.hasSuffix(".i2p") {
            return .rejected(SMTPReply(550, "5.7.1", "Sender address refused: <\(sender)> is not an Internet address"))
        }
        let verdict = await SPF.check(ip: client, mailFrom: sender?.description, helo: helo, resolver: exchange.resolver)
        switch verdict.result {
        case .fail where settings.rejectSPFFail:
            // RFC 7208 8.4 and RFC 7372 3.2.
            return .rejected(SMTPReply(550, "5.7.23", "SPF: \(verdict.domain) does not allow this host to send its mail"))
        case .temperror:
            // RFC 7208 8.6: a DNS failure is temporary.
            return .rejected(SMTPReply(451, "4.4.3", "SPF: temporary DNS error, try again later"))
        default:
            break
        }
        // The Internet domain's own addresses send only through the gateway, never from outside.
        if let sender, senderDomain == settings.internetDomain && verdict.result != .pass {
            return .rejected(SMTPReply(550, "5.7.1", "Sender address refused: <\(sender)> does not send from here"))
        }
        spf = verdict
        // The core takes any 8-bit or UTF-8 mail from the gateway: it stores, it does not relay.
        mailLine = "MAIL FROM:<\(sender?.description ?? "")> BODY=8BITMIME SMTPUTF8"
        recipientLines = []
        guard let reply = await linkTransaction(), reply.code == 250 else {
            mailLine = nil
            return .rejected(ExchangeReplies.localProblem)
        }
        return .accepted
    }

    /// Starts the transaction on the link (opening it when needed; a broken one is replaced
    /// once) and replays the recipients accepted so far. Returns the MAIL reply, nil when the
    /// core cannot be reached.
    private func linkTransaction() async -> SMTPClientSession.Reply? {
        guard let mailLine else { return nil }
        for _ in 0..<2 {
            guard !closed else { return nil }
            if link == nil {
                let opened = await exchange.core.openSession()
                // The client may have gone while the link was opening.
                if closed { opened?.close(); return nil }
                link = opened
                linkUsed = false
            }
            guard let link else { return nil }
            if linkUsed {
                guard await link.command("RSET")?.code == 250 else { drop(); continue }
            }
            linkUsed = true
            guard let reply = await link.command(mailLine) else { drop(); continue }
            guard reply.code == 250 else { return reply }
            var replayed = true
            for line in recipientLines {
                guard let answer = await link.command(line), [250, 251].contains(answer.code) else { replayed = false; break }
            }
            if !replayed { drop(); continue }
            return reply
        }
        return nil
    }

    private func drop() {
        link?.close()
        link = nil
    }

    func checkRecipient(_ recipient: EmailAddress, sender: EmailAddress?, declaredSize: Int?, earlier: [EmailAddress]) async -> RecipientVerdict {
        let settings = exchange.settings
        // Never an open relay (RFC 5321 3.6.2): only the Internet domain's own users.
        guard recipient.domain.lowercased() == settings.internetDomain else {
            return .rejected(SMTPReply(550, "5.7.1", "Relay access denied: only mail for @\(settings.internetDomain) is taken here"))
        }
        guard mailLine != nil else { return .rejected(ExchangeReplies.localProblem) }
        // PRIV-5: the envelope recipient is rewritten to the core's domain.
        let line = "RCPT TO:<\(recipient.localPart)@\(settings.coreDomain)>"
        var reply = await link?.command(line)
        if reply == nil {
            // The link went away while the client took its time: a new one, the transaction replayed.
            drop()
            guard await linkTransaction()?.code == 250 else { return .rejected(ExchangeReplies.localProblem) }
            reply = await link?.command(line)
        }
        guard let reply else {
            drop()
            return .rejected(ExchangeReplies.localProblem)
        }
        if [250, 251].contains(reply.code) {
            if !recipientLines.contains(line) { recipientLines.append(line) }
            return .accepted
        }
        return .rejected(Self.answer(for: reply, recipient: recipient))
    }

    func deliver(_ envelope: SubmissionEnvelope, message: ByteBuffer) async -> DeliveryOutcome {
        let settings = exchange.settings
        guard mailLine != nil else { return .rejected(ExchangeReplies.localProblem) }
        defer { mailLine = nil; recipientLines = [] }
        // SCAN-1: infected mail is refused in the dialogue (no bounce to a forged sender), before
        // anything reaches the core.
        let decision = await settings.scan?.decide(message) ?? .pass
        if case .refuse(let code, let status, let text) = decision { return .rejected(SMTPReply(code, status, text)) }
        let unscanned = decision == .passUnscanned
        let bytes = Array(message.readableBytesView)
        let now = Int64(Date().timeIntervalSince1970)
        let dkim = await DKIM.verify(bytes, keys: exchange.resolver, now: now)
        let verdict = ([spf?.authenticationResult ?? "spf=none"] + dkim.map(\.authenticationResult)).joined(separator: ";\r\n\t")
        // PRIV-5: a trace field with nothing of the gateway's or the client's address; RFC 3848
        // tells whether the client used TLS.
        let trace = "Received: by \(settings.internetDomain) with \(envelope.overTLS ? "ESMTPS" : "ESMTP") id \(RandomToken.make(length: 12));\r\n\t"
            + RFC5322Date.format(secondsSince1970: now)
        let sanitised = ByteBuffer(bytes: InboundSanitiser(internetDomain: settings.internetDomain, internalDomain: settings.coreDomain)
            .sanitise(bytes, verdict: verdict, trace: unscanned ? trace + "\r\n" + ScanDecision.unscannedField : trace))
        // The link may have died while the client sent the message: once more on a new one.
        var final: SMTPClientSession.Reply?
        for attempt in 0..<2 {
            if attempt > 0 || link == nil {
                drop()
                guard await linkTransaction()?.code == 250 else { return .rejected(ExchangeReplies.localProblem) }
            }
            guard let link, let start = await link.command("DATA") else { continue }
            guard start.code == 354 else { return .rejected(Self.answer(for: start, recipient: nil)) }
            final = await link.data(sanitised)
            if final != nil { break }
        }
        guard let final else {
            drop()
            return .rejected(ExchangeReplies.localProblem)
        }
        guard (200..<300).contains(final.code) else { return .rejected(Self.answer(for: final, recipient: nil)) }
        exchange.logger.debug("inbound message forwarded to the core", metadata: ["recipients": "\(envelope.recipients.count)"])
        return .accepted
    }

    /// The core's refusal in the gateway's own words: its code and enhanced status, never its
    /// text (which would name the core's domain).
    static func answer(for reply: SMTPReplyReader.Reply, recipient: EmailAddress?) -> SMTPReply {
        // A reply that is neither (a 2xx where a refusal was expected) is a local problem.
        guard reply.isPermanent || reply.isTemporary else { return ExchangeReplies.localProblem }
        let status = reply.enhanced ?? (reply.isPermanent ? "5.0.0" : "4.0.0")
        // 421 means "closing": the client's session goes on, so it hears 451.
        let code = reply.code == 421 ? 451 : reply.code
        let subject = recipient.map { " <\($0)>" } ?? ""
        switch status.split(separator: ".").dropFirst().joined(separator: ".") {
        case "1.1": return SMTPReply(code, status, "No such user here:\(subject)")
        case "2.2": return SMTPReply(code, status, "Mailbox full:\(subject)")
        case "3.4": return SMTPReply(code, status, "Message too large for the mailbox")
        default:
            return reply.isPermanent ? SMTPReply(code, status, "Refused\(subject.isEmpty ? "" : ":" + subject)")
                : SMTPReply(code, status, "Temporary problem, try again later")
        }
    }
}

/// DNS blocklists (RFC 5782): a client is listed when `<reversed address>.<zone>` has an A
/// record in 127.0.0.0/8. A failing lookup counts as not listed (an outage of a list must not
/// stop all mail).
enum Blocklist {
    static func firstListing(of address: [UInt8], in zones: [String], resolver: any SPFResolver,
                             logger: Logger? = nil) async -> String? {
        // An IPv4 client on a dual-stack listener arrives as ::ffff:a.b.c.d: listed as IPv4.
        guard !zones.isEmpty, let client = SPF.normalized(address), let reversed = reversedName(client) else { return nil }
        for zone in zones {
            let answers = (try? await resolver.spfAddresses(of: "\(reversed).\(zone)", ipv6: false)) ?? []
            // 127.255.255.x is a list's error code (Spamhaus: a public resolver, a typo, over quota):
            // the list is unusable, not a listing.
            if answers.contains(where: { $0.count == 4 && $0[0] == 127 && $0[1] == 255 }) {
                logger?.warning("a DNS blocklist answers with an error code; it is ignored", metadata: ["zone": "\(zone)"])
                continue
            }
            if answers.contains(where: { $0.count == 4 && $0[0] == 127 && $0 != [127, 0, 0, 1] }) { return zone }
        }
        return nil
    }

    /// `4.3.2.1` for 1.2.3.4; 32 reversed nibbles for IPv6 (RFC 5782 2.4).
    static func reversedName(_ address: [UInt8]) -> String? {
        switch address.count {
        case 4: return address.reversed().map(String.init).joined(separator: ".")
        case 16: return address.reversed().flatMap { [String($0 & 0x0f, radix: 16), String($0 >> 4, radix: 16)] }.joined(separator: ".")
        default: return nil
        }
    }
}

/// A limit on new connections per client address (GW-2 rate control): at most `limit` in any
/// `window` seconds. Addresses live in memory only, and only for the window.
public final class ConnectionRateLimiter: Sendable {
    /// The counting key: an IPv4 address as it is, an IPv6 address by its first four groups.
    static func key(_ address: String) -> String {
        guard address.contains(":"), let bytes = SPF.parseIP(address), bytes.count == 16 else { return address }
        if let v4 = SPF.normalized(bytes), v4.count == 4 { return v4.map(String.init).joined(separator: ".") }
        return stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":") + "::/64"
    }

    private let limit: Int
    private let window: Double
    private let now: @Sendable () -> Double
    private let recent = NIOLockedValueBox([String: [Double]]())

    public init(limit: Int, window: Double = 60, now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) {
        self.limit = limit
        self.window = window
        self.now = now
    }

    private let lastPrune = NIOLockedValueBox(0.0)

    /// Counts a connection from `address`; false when it is over the limit. IPv6 clients are
    /// counted by /64: one host usually has a whole /64 to pick addresses from.
    public func admit(_ address: String) -> Bool {
        let time = now()
        let key = Self.key(address)
        return recent.withLockedValue { recent in
            // Forget idle addresses once a window when the table grows, so it stays small and
            // the cost of pruning is not paid on every connection.
            if recent.count > 10_000, lastPrune.withLockedValue({ time - $0 > window }) {
                recent = recent.filter { ($0.value.last ?? 0) > time - window }
                lastPrune.withLockedValue { $0 = time }
            }
            let address = key
            var times = recent[address, default: []].filter { $0 > time - window }
            guard times.count < limit else {
                recent[address] = times
                return false
            }
            times.append(time)
            recent[address] = times
            return true
        }
    }
}
