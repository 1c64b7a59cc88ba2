import NIOCore

/// What the bot's IRC connection is told to do and allowed to do.
public struct IRCClientConfiguration: Sendable, Equatable {
    /// The nick the bot wants; the account pages tell users to message this nick.
    public var nick: String
    public var username: String
    public var realName: String
    /// Sent as PASS before NICK and USER when set (RFC 2812 3.1.1).
    public var serverPassword: String?
    /// When set, `PRIVMSG NickServ :IDENTIFY <password>` follows registration and every regain of
    /// the wanted nick.
    public var nickServPassword: String?
    public var nickServName: String
    /// How many nicks are tried during registration before the connection is given up.
    public var maxNickAttempts: Int
    /// Registration (001) must arrive within this time of connecting.
    public var registrationTimeout: TimeAmount
    /// After this long without a line from the server, the bot sends PING …
    public var pingAfterSilence: TimeAmount
    /// … and closes the connection if nothing arrives within this time after it.
    public var pingTimeout: TimeAmount
    /// While registered under another nick, `NICK <nick>` is tried this often.
    public var nickRegainInterval: TimeAmount
    /// Outgoing flood control: a token bucket of `floodBurst` lines refilled with one line per
    /// `floodInterval` (RFC 1459 8.10 throttles clients at about one line every 2 seconds).
    public var floodBurst: Int
    public var floodInterval: TimeAmount
    /// Private messages waiting for the bucket beyond this are dropped, oldest first.
    public var queueLimit: Int

    public init(nick: String, username: String? = nil, realName: String = "Postern new-mail notices",
                serverPassword: String? = nil, nickServPassword: String? = nil, nickServName: String = "NickServ",
                maxNickAttempts: Int = 10, registrationTimeout: TimeAmount = .seconds(60),
                pingAfterSilence: TimeAmount = .seconds(120), pingTimeout: TimeAmount = .seconds(60),
                nickRegainInterval: TimeAmount = .seconds(300),
                floodBurst: Int = 4, floodInterval: TimeAmount = .seconds(2), queueLimit: Int = 100) {
        self.nick = nick
        self.username = username ?? nick
        self.realName = realName
        self.serverPassword = serverPassword
        self.nickServPassword = nickServPassword
        self.nickServName = nickServName
        self.maxNickAttempts = max(1, maxNickAttempts)
        self.registrationTimeout = registrationTimeout
        self.pingAfterSilence = pingAfterSilence
        self.pingTimeout = pingTimeout
        self.nickRegainInterval = nickRegainInterval
        self.floodBurst = max(1, floodBurst)
        self.floodInterval = floodInterval
        self.queueLimit = max(1, queueLimit)
    }
}

/// One connection's IRC client dialogue as a value: events in, actions out. No I/O, no clock:
/// the shell passes `now` with every event and calls `.tick` at the deadline of the last
/// `.schedule` action. The queue of private messages outlives a connection (the shell may keep
/// the value, or take the queue with `takeQueuedMessages()`).
public struct IRCClientSession: Sendable {
    public enum Event: Sendable, Equatable {
        case connected(now: NIODeadline)
        case received(IRCMessage, now: NIODeadline)
        /// A line that did not parse or was too long: it proves the link is alive, nothing more.
        case receivedUnreadable(now: NIODeadline)
        case tick(now: NIODeadline)
        /// Queue a PRIVMSG to a nick; sent when registered and the bucket allows.
        case sendPrivateMessage(to: String, text: String, now: NIODeadline)
        case quit(reason: String, now: NIODeadline)
        case disconnected
    }

    public enum CloseReason: Sendable, Equatable {
        case serverError          // ERROR from the server (RFC 2812 3.7.4)
        case pingTimeout
        case registrationTimeout
        case nickUnavailable      // every nick tried was refused
        case quit
    }

    public enum Action: Sendable, Equatable {
        case send(IRCMessage)
        /// Close after the lines sent so far are written.
        case close(CloseReason)
        case registered(nick: String)
        /// A PRIVMSG from a user to the bot itself (never a channel, never CTCP).
        case privateMessage(from: String, text: String)
        /// Call `.tick` at this time (replaces any earlier schedule).
        case schedule(at: NIODeadline)
    }

    public enum Phase: Sendable, Equatable { case idle, registering, registered, closing }

    public let configuration: IRCClientConfiguration
    public private(set) var phase: Phase = .idle
    /// The nick the server knows us by (the wanted one until 001 says otherwise).
    public private(set) var currentNick: String

    private struct Outgoing: Sendable {
        var message: IRCMessage
        /// Notices may be dropped when the queue is full; NickServ and NICK lines never are.
        var droppable: Bool
    }
    private var queue: [Outgoing] = []
    /// The token bucket as time credit in nanoseconds (one line costs `floodInterval`), so the
    /// arithmetic is exact: capacity is `floodBurst` lines.
    private var credit: Int64
    private var lastRefill: NIODeadline?
    private var nickAttempts = 0
    private var connectedAt = NIODeadline.uptimeNanoseconds(0)
    private var lastReceived = NIODeadline.uptimeNanoseconds(0)
    private var pingSentAt: NIODeadline?
    private var pingCounter = 0
    private var lastNickTry = NIODeadline.uptimeNanoseconds(0)
    /// Notices dropped because the queue was full, for the shell's log.
    public private(set) var droppedCount = 0

    public init(configuration: IRCClientConfiguration) {
        self.configuration = configuration
        self.currentNick = configuration.nick
        self.credit = Self.capacity(configuration)
    }

    /// PRIVMSGs still waiting, in order.
    public var queuedCount: Int { queue.count }

    /// Removes and returns the queued private messages to users (not NickServ or NICK lines), so
    /// a shell that makes a new session per connection can carry them over.
    public mutating func takeQueuedMessages() -> [(to: String, text: String)] {
        let taken = queue.filter(\.droppable).compactMap { item -> (to: String, text: String)? in
            guard item.message.parameters.count == 2 else { return nil }
            return (item.message.parameters[0], item.message.parameters[1])
        }
        queue.removeAll()
        return taken
    }

    public mutating func handle(_ event: Event) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .connected(let now):
            phase = .registering
            currentNick = configuration.nick
            nickAttempts = 0
            connectedAt = now
            lastReceived = now
            pingSentAt = nil
            // Only NickServ and NICK lines belong to a connection; notices carry over.
            queue.removeAll { !$0.droppable }
            credit = Self.capacity(configuration)
            lastRefill = now
            // RFC 2812 3.1: PASS (optional), NICK, USER <user> <mode> <unused> :<realname>.
            if let password = configuration.serverPassword {
                send(IRCMessage(command: "PASS", parameters: [password]), now: now, into: &actions)
            }
            send(IRCMessage(command: "NICK", parameters: [currentNick]), now: now, into: &actions)
            send(IRCMessage(command: "USER", parameters: [configuration.username, "0", "*", configuration.realName]),
                 now: now, into: &actions)

        case .received(let message, let now):
            guard phase == .registering || phase == .registered else { return [] }
            // Any line proves the server is alive (a PONG is not needed, RFC 2812 3.7.2).
            lastReceived = now
            pingSentAt = nil
            received(message, now: now, into: &actions)

        case .receivedUnreadable(let now):
            guard phase == .registering || phase == .registered else { return [] }
            lastReceived = now
            pingSentAt = nil

        case .tick(let now):
            guard phase == .registering || phase == .registered else { return [] }
            if phase == .registering && now >= connectedAt + configuration.registrationTimeout {
                return close(.registrationTimeout)
            }
            if let pingSentAt {
                if now >= pingSentAt + configuration.pingTimeout { return close(.pingTimeout) }
            } else if now >= lastReceived + configuration.pingAfterSilence {
                pingCounter += 1
                pingSentAt = now
                send(IRCMessage(command: "PING", parameters: ["postern-\(pingCounter)"]), now: now, into: &actions)
            }
            if phase == .registered && !IRCCaseMapping.equal(currentNick, configuration.nick)
                && now >= lastNickTry + configuration.nickRegainInterval
                && !queue.contains(where: { $0.message.command == "NICK" }) {
                lastNickTry = now
                queue.insert(Outgoing(message: IRCMessage(command: "NICK", parameters: [configuration.nick]), droppable: false), at: 0)
            }

        case .sendPrivateMessage(let target, let text, _):
            guard Self.isPlainNickTarget(target) else { return [] }
            // Control characters would turn a notice into CTCP, colours or a second line.
            let clean = String(String.UnicodeScalarView(text.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F }))
            guard !clean.isEmpty else { return [] }
            queue.append(Outgoing(message: IRCMessage(command: "PRIVMSG", parameters: [target, clean]), droppable: true))
            var droppable = queue.count(where: \.droppable)
            while droppable > configuration.queueLimit, let oldest = queue.firstIndex(where: \.droppable) {
                queue.remove(at: oldest)
                droppable -= 1
                droppedCount += 1
            }
            guard phase == .registered else { return [] }

        case .quit(let reason, let now):
            guard phase == .registering || phase == .registered else { return [] }
            // RFC 2812 3.1.7; the server answers with ERROR and closes, we close after writing.
            send(IRCMessage(command: "QUIT", parameters: [reason]), now: now, into: &actions)
            actions.append(.close(.quit))
            phase = .closing
            return actions

        case .disconnected:
            phase = .idle
            pingSentAt = nil
            return []
        }
        if case .close = actions.last { return actions }
        if let now = event.now { drain(now: now, into: &actions) }
        if let deadline = nextDeadline { actions.append(.schedule(at: deadline)) }
        return actions
    }

    // MARK: - Incoming

    private mutating func received(_ message: IRCMessage, now: NIODeadline, into actions: inout [Action]) {
        switch message.command {
        case "PING":
            // RFC 2812 3.7.2: answer at once with the same token; PONG bypasses flood control so
            // a long notice queue can never make the server drop us for a ping timeout.
            let token = message.parameters.first ?? currentNick
            send(IRCMessage(command: "PONG", parameters: [token.isEmpty ? currentNick : token]), now: now, into: &actions)

        case "ERROR":
            actions += close(.serverError)

        case "001":
            // RFC 2812 5.1: RPL_WELCOME; its first parameter is the nick we got.
            guard phase == .registering else { return }
            phase = .registered
            if let nick = message.parameters.first, IRCCaseMapping.isValidNick(nick) { currentNick = nick }
            lastNickTry = now
            actions.append(.registered(nick: currentNick))
            identifyIfWanted()

        case "432", "433", "436", "437":
            // ERR_ERRONEUSNICKNAME, ERR_NICKNAMEINUSE, ERR_NICKCOLLISION, ERR_UNAVAILRESOURCE
            // (RFC 2812 5.2). After registration they answer a regain attempt: keep the nick we have.
            guard phase == .registering else { return }
            nickAttempts += 1
            if nickAttempts >= configuration.maxNickAttempts {
                actions += close(.nickUnavailable)
                return
            }
            currentNick = alternativeNick(attempt: nickAttempts)
            send(IRCMessage(command: "NICK", parameters: [currentNick]), now: now, into: &actions)

        case "NICK":
            // Our own nick change (a regain) comes back as ":old!u@h NICK new" (RFC 2812 3.1.2).
            guard let old = message.sourceNick, IRCCaseMapping.equal(old, currentNick),
                  let new = message.parameters.first, IRCCaseMapping.isValidNick(new) else { return }
            currentNick = new
            if IRCCaseMapping.equal(new, configuration.nick) { identifyIfWanted() }

        case "PRIVMSG":
            // Only a user's message to the bot itself; channel messages (the bot joins none, but a
            // server may still route some) and CTCP requests (RFC 1459 CTCP, \u{1}-framed) are
            // ignored, and NOTICE is never answered at all (RFC 2812 3.3.2).
            guard phase == .registered, message.isFromUser, let from = message.sourceNick,
                  message.parameters.count >= 2, IRCCaseMapping.equal(message.parameters[0], currentNick) else { return }
            let text = message.parameters[1]
            guard !text.utf8.contains(1) else { return }
            actions.append(.privateMessage(from: from, text: text))

        default:
            return
        }
    }

    private mutating func identifyIfWanted() {
        guard let password = configuration.nickServPassword else { return }
        queue.removeAll { !$0.droppable && $0.message.command == "PRIVMSG" }
        let identify = IRCMessage(command: "PRIVMSG", parameters: [configuration.nickServName, "IDENTIFY \(password)"])
        queue.insert(Outgoing(message: identify, droppable: false), at: 0)
    }

    /// nick_, then nick2, nick3 …, kept within the wanted nick's length (at least 9, RFC 2812
    /// 1.2.1), since a server that accepts the wanted nick accepts that many characters.
    func alternativeNick(attempt: Int) -> String {
        let suffix = attempt == 1 ? "_" : String(attempt)
        let base = configuration.nick
        let room = max(9, base.count) - suffix.count
        return String(base.prefix(max(1, room))) + suffix
    }

    // MARK: - Outgoing

    private mutating func close(_ reason: CloseReason) -> [Action] {
        phase = .closing
        return [.close(reason)]
    }

    /// Lines that are never held back (registration, PONG, PING, QUIT) still use a token when one
    /// is there, so the bucket reflects what the server counts.
    private mutating func send(_ message: IRCMessage, now: NIODeadline, into actions: inout [Action]) {
        refill(now: now)
        credit = max(0, credit - lineCost)
        actions.append(.send(message))
    }

    private mutating func drain(now: NIODeadline, into actions: inout [Action]) {
        guard phase == .registered else { return }
        refill(now: now)
        while !queue.isEmpty && credit >= lineCost {
            credit -= lineCost
            actions.append(.send(queue.removeFirst().message))
        }
    }

    private mutating func refill(now: NIODeadline) {
        guard let last = lastRefill else { lastRefill = now; return }
        let elapsed = max(0, (now - last).nanoseconds)
        credit = min(Self.capacity(configuration), credit + elapsed)
        lastRefill = now
    }

    private var lineCost: Int64 { max(1, configuration.floodInterval.nanoseconds) }

    private static func capacity(_ configuration: IRCClientConfiguration) -> Int64 {
        Int64(configuration.floodBurst) * max(1, configuration.floodInterval.nanoseconds)
    }

    /// When `.tick` is next needed: registration timeout, liveness, the bucket, a nick regain.
    public var nextDeadline: NIODeadline? {
        guard phase == .registering || phase == .registered else { return nil }
        var deadlines: [NIODeadline] = []
        if phase == .registering { deadlines.append(connectedAt + configuration.registrationTimeout) }
        if let pingSentAt {
            deadlines.append(pingSentAt + configuration.pingTimeout)
        } else {
            deadlines.append(lastReceived + configuration.pingAfterSilence)
        }
        if phase == .registered {
            if !queue.isEmpty, credit < lineCost, let lastRefill {
                deadlines.append(lastRefill + .nanoseconds(lineCost - credit))
            }
            if !IRCCaseMapping.equal(currentNick, configuration.nick) {
                deadlines.append(lastNickTry + configuration.nickRegainInterval)
            }
        }
        return deadlines.min()
    }

    /// A single nick: no channel, no list of targets, nothing that changes the line.
    static func isPlainNickTarget(_ target: String) -> Bool { IRCCaseMapping.isValidNick(target) }
}

extension IRCClientSession.Event {
    var now: NIODeadline? {
        switch self {
        case .connected(let now), .received(_, let now), .receivedUnreadable(let now), .tick(let now),
             .sendPrivateMessage(_, _, let now), .quit(_, let now):
            now
        case .disconnected:
            nil
        }
    }
}
