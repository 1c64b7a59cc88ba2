import Delivery
import Foundation
import HTTPTypes
import KeyDirectory
import Hummingbird
import Logging
import MailCore
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Store

/// What the account pages need to know of the service's configuration.
public struct AccountPagesSettings: Sendable {
    public var domain: String
    public var mailboxQuota: Int
    public var internetQuota: Int
    /// Bits of the sign-up's proof-of-work stamp.
    public var signupBits: Int
    /// Sign-ups accepted per rolling hour, from everybody together (every I2P visitor arrives
    /// from the same tunnel address, so a per-address limit would mean nothing).
    public var signupsPerHour: Int
    public var defaultDelay: DelayMode
    public var quarantineDays: Int
    public var sessionIdle: Double
    /// The notification bot's nick, when the server runs one (IRC-1).
    public var ircBotNick: String?

    public init(domain: String, mailboxQuota: Int, internetQuota: Int, signupBits: Int, signupsPerHour: Int,
                defaultDelay: DelayMode, quarantineDays: Int, sessionIdle: Double = 1800) {
        self.domain = domain
        self.mailboxQuota = mailboxQuota
        self.internetQuota = internetQuota
        self.signupBits = signupBits
        self.signupsPerHour = signupsPerHour
        self.defaultDelay = defaultDelay
        self.quarantineDays = quarantineDays
        self.sessionIdle = sessionIdle
    }

    public func with(ircBotNick: String?) -> AccountPagesSettings {
        var copy = self
        copy.ircBotNick = ircBotNick
        return copy
    }
}

/// The global sign-up limit: at most `perHour` accounts in any 60 minutes. Pure value.
public struct SignupLimiter: Sendable {
    public var perHour: Int
    private var recent: [Double] = []

    public init(perHour: Int) { self.perHour = perHour }

    public func allows(now: Double) -> Bool {
        recent.filter { now - $0 < 3600 }.count < perHour
    }

    public mutating func record(now: Double) {
        recent = recent.filter { now - $0 < 3600 } + [now]
    }

    /// Gives back a slot recorded at `now` (the sign-up it was reserved for failed).
    public mutating func forget(now: Double) {
        if let index = recent.lastIndex(of: now) { recent.remove(at: index) }
    }
}

/// What an account-pages session carries: the logged-in account, or nothing for a visitor (who
/// still gets a session so that the login and sign-up forms carry a CSRF token).
public struct AccountVisitor: Sendable {
    public var account: String?
}

/// The account pages (WEB-1, ACCT-1..5 for the user himself), served by `postern serve` on its
/// own loopback port and published on I2P as an HTTP service. Logins go through the same
/// `Authenticator` as SMTP and POP3, so its back-off is shared (SMTP-6).
public final class AccountPages: Sendable {
    static let cookie = "postern_account"
    static let formLimit = 16 * 1024

    let accounts: AccountStore
    let authenticator: Authenticator
    let queue: OutboundQueue
    let workers: NIOThreadPool
    let settings: AccountPagesSettings
    let logger: Logger
    let now: @Sendable () -> Double
    let sessions: WebSessionStore<AccountVisitor>
    let pages: PageRenderer
    let limiter: NIOLockedValueBox<SignupLimiter>
    /// The key book (KEYS), when the server keeps one.
    let keyBook: KeyBook?

    public init(accounts: AccountStore, authenticator: Authenticator, queue: OutboundQueue, workers: NIOThreadPool,
                settings: AccountPagesSettings, logger: Logger, keyBook: KeyBook? = nil,
                now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) throws {
        self.keyBook = keyBook
        self.accounts = accounts
        self.authenticator = authenticator
        self.queue = queue
        self.workers = workers
        self.settings = settings
        self.logger = logger
        self.now = now
        self.sessions = WebSessionStore(idleTimeout: settings.sessionIdle, now: now)
        self.pages = try PageRenderer(title: "Postern — \(settings.domain)", templates: AccountTemplates.all)
        self.limiter = NIOLockedValueBox(SignupLimiter(perHour: settings.signupsPerHour))
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ProblemPageMiddleware(pages: pages, logger: logger))
        router.get("/static/style.css") { _, _ in SharedTemplates.styleSheet.response() }
        router.get("/static/pow.js") { _, _ in ProofOfWorkScript.asset.response() }
        router.get("/") { [self] request, _ in
            if signedIn(request) != nil { return Response.seeOther("/account") }
            return pages.page("home", ["domain": settings.domain])
        }
        router.get("/login") { [self] request, _ in
            let (session, cookie) = visitorSession(request)
            return pages.page("login", base(session, title: "Log in"), headers: cookie)
        }
        router.post("/login") { [self] request, _ in try await login(request) }
        router.get("/signup") { [self] request, _ in
            let (session, cookie) = visitorSession(request)
            var context = base(session, title: "Create an account")
            context["bits"] = settings.signupBits
            return pages.page("signup", context, headers: cookie)
        }
        router.post("/signup") { [self] request, _ in try await signup(request) }
        router.post("/logout") { [self] request, _ in
            let form = try await request.form(upTo: Self.formLimit)
            if let session = sessions.find(request.cookies[Self.cookie]?.value) {
                guard session.acceptsCSRF(form["csrf"]) else { return staleForm() }
                sessions.remove(session.id)
            }
            return Response.seeOther("/", headers: SessionCookie.clear(Self.cookie))
        }
        router.get("/account") { [self] request, _ in
            guard let session = signedIn(request), let name = session.payload.account else { return Response.seeOther("/login") }
            return try await overview(session, name: name)
        }
        router.post("/account/delay") { [self] request, _ in
            try await change(request) { form, name in
                let mode = try form.required("delay", label: "Delay", maximum: 10)
                guard DelayMode(rawValue: mode) != nil else { throw FormError("Choose one of the delay modes.") }
                _ = try await self.onWorkers { try self.accounts.apply(settings: [("delay", mode)], to: name) }
                return "Delay saved: \(mode)."
            }
        }
        router.post("/account/irc") { [self] request, _ in
            try await change(request) { form, name in
                let nick = try form.optional("irc_nick", label: "IRC nick", maximum: 30).trimmingCharacters(in: .whitespaces)
                let account = try await self.onWorkers { try self.accounts.apply(settings: [("irc_nick", nick)], to: name) }
                if nick.isEmpty { return "IRC notices turned off." }
                if let code = account.ircCode {
                    return "IRC nick saved: \(nick). Notices start once you send the bot this code from that nick: /msg \(self.settings.ircBotNick ?? "postman") \(code)"
                }
                return "IRC nick saved: \(nick)."
            }
        }
        router.post("/account/options") { [self] request, _ in
            try await change(request) { form, name in
                let html = form["html_sanitise"] == "on" ? "on" : "off"
                let listing = form["key_listing"] == "on" ? "on" : "off"
                _ = try await self.onWorkers {
                    try self.accounts.apply(settings: [("html_sanitise", html), ("key_listing", listing)], to: name)
                }
                return "Privacy options saved."
            }
        }
        router.post("/account/password") { [self] request, _ in try await changePassword(request) }
        router.get("/account/delete") { [self] request, _ in
            guard let session = signedIn(request), let name = session.payload.account else { return Response.seeOther("/login") }
            var context = base(session, title: "Delete the account")
            context["address"] = "\(name)@\(settings.domain)"
            context["quarantineDays"] = settings.quarantineDays
            return pages.page("delete", context)
        }
        router.post("/account/delete") { [self] request, _ in try await deleteAccount(request) }
        if let keyBook {
            let workers = self.workers
            KeyBookPages(book: keyBook, domain: settings.domain, pages: pages,
                         workers: { work in try await workers.runIfActive(work) }, now: now).register(on: router)
            router.post("/account/key") { [self] request, _ in
                guard let session = signedIn(request), let name = session.payload.account else { return Response.seeOther("/login") }
                let form = try await request.form(upTo: 256 * 1024)
                guard session.acceptsCSRF(form["csrf"]) else { return staleForm() }
                var upload = form.files.first { $0.field == "keyfile" }?.data ?? []
                if upload.isEmpty { upload = Array((form["armored"] ?? "").utf8) }
                guard !upload.isEmpty else { throw FormError("Choose a key file or paste the key.") }
                let key = try KeyBookPages.prepare(upload, account: name, domain: settings.domain, now: Int64(now()))
                try await onWorkers { try keyBook.publish(key) }
                sessions.update(session.id) { $0.notice = "Key \(KeyBookPages.grouped(key.fingerprint)) published for \(key.userID)." }
                return Response.seeOther("/account#key")
            }
            router.post("/account/key/remove") { [self] request, _ in
                guard let session = signedIn(request), let name = session.payload.account else { return Response.seeOther("/login") }
                let form = try await request.form(upTo: Self.formLimit)
                guard session.acceptsCSRF(form["csrf"]) else { return staleForm() }
                let removed = try await onWorkers { try keyBook.remove(name) }
                sessions.update(session.id) { $0.notice = removed ? "Key removed: nobody can look it up any more." : "There was no key to remove." }
                return Response.seeOther("/account#key")
            }
        }
        return router
    }

    /// The app on `host`:`port`; `onRunning` gets the bound address.
    public func application(host: String, port: Int, onRunning: @escaping @Sendable (SocketAddress?) async -> Void) -> Application<RouterResponder<BasicRequestContext>> {
        Application(router: router(), server: .postern(), configuration: .init(address: .hostname(host, port: port), serverName: nil),
                    onServerRunning: { channel in await onRunning(channel.localAddress) }, logger: WebServer.frameworkLogger(logger))
    }

    // MARK: sessions

    func signedIn(_ request: Request) -> WebSession<AccountVisitor>? {
        guard let session = sessions.find(request.cookies[Self.cookie]?.value), session.payload.account != nil else { return nil }
        return session
    }

    /// The visitor's session, made when there is none (the cookie to set comes with it).
    func visitorSession(_ request: Request) -> (WebSession<AccountVisitor>, HTTPFields) {
        if let session = sessions.find(request.cookies[Self.cookie]?.value) { return (session, [:]) }
        let session = sessions.create(AccountVisitor(account: nil))
        return (session, SessionCookie.set(Self.cookie, session.id))
    }

    /// What every page's layout needs: the CSRF token, the account and its navigation, the notice.
    func base(_ session: WebSession<AccountVisitor>, title: String) -> [String: Any] {
        var context: [String: Any] = ["csrf": session.csrfToken, "domain": settings.domain, "pageTitle": title]
        if let notice = sessions.takeNotice(session.id) { context["notice"] = notice }
        if let name = session.payload.account {
            context["account"] = "\(name)@\(settings.domain)"
            context["nav"] = [["href": "/account", "label": "Account", "current": title == "Account"]]
        }
        return context
    }

    func staleForm() -> Response {
        pages.problem("This form has expired or did not come from this site. Reload the page and try again.", status: .forbidden, back: "/login")
    }

    func onWorkers<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await workers.runIfActive(work)
    }

    // MARK: login and sign-up

    func login(_ request: Request) async throws -> Response {
        let form = try await request.form(upTo: Self.formLimit)
        guard let visitor = sessions.find(request.cookies[Self.cookie]?.value), visitor.acceptsCSRF(form["csrf"]) else { return staleForm() }
        let name = try form.required("name", label: "Account name", maximum: 100).trimmingCharacters(in: .whitespaces)
        let password = try form.required("password", label: "Password")
        // The same answer for an unknown name and a wrong password: the page reveals no account list.
        switch await authenticator.verify(username: name, password: password) {
        case .success(let account):
            sessions.remove(visitor.id)
            let session = sessions.create(AccountVisitor(account: account.name))
            return Response.seeOther("/account", headers: SessionCookie.set(Self.cookie, session.id))
        case .failure:
            var context = base(visitor, title: "Log in")
            context["name"] = name
            context["error"] = "Wrong account name or password."
            return pages.page("login", context, status: .unauthorized)
        case .temporaryFailure:
            var context = base(visitor, title: "Log in")
            context["name"] = name
            context["error"] = "Too many failed attempts for this account just now. Wait a minute and try again."
            return pages.page("login", context, status: .tooManyRequests)
        }
    }

    func signup(_ request: Request) async throws -> Response {
        let form = try await request.form(upTo: Self.formLimit)
        guard let visitor = sessions.find(request.cookies[Self.cookie]?.value), visitor.acceptsCSRF(form["csrf"]) else { return staleForm() }
        var context = base(visitor, title: "Create an account")
        context["bits"] = settings.signupBits
        context["name"] = form["name"].map { String($0.prefix(32)) } ?? ""
        func refuse(_ message: String, _ status: HTTPResponse.Status = .badRequest) -> Response {
            context["error"] = message
            return pages.page("signup", context, status: status)
        }
        do {
            let name = try accounts.policy.validateNew(try form.required("name", label: "Account name", maximum: 100).trimmingCharacters(in: .whitespaces))
            let password = try form.required("password", label: "Password")
            guard password == form["password2"] else { return refuse("The two passwords differ.") }
            guard password.count >= PasswordHash.minimumPasswordLength else { return refuse(AccountError.passwordTooShort.description) }
            let stampText = try form.required("stamp", label: "Proof of work", maximum: 300).trimmingCharacters(in: .whitespacesAndNewlines)
            let address = "\(name)@\(settings.domain)"
            let stamp: HashcashStamp
            do {
                stamp = try HashcashStamp.parse(stampText)
                try stamp.verify(resource: address, requiredBits: settings.signupBits, now: Int64(now()))
            } catch {
                context["stamp"] = stampText
                return refuse("The proof of work is not valid for \(address): \(error). Make a new one with postern hashcash mint --bits \(settings.signupBits) \(address).")
            }
            let time = now()
            // Checked and reserved in one step: concurrent sign-ups cannot all pass the check
            // before any is counted. A sign-up that then fails gives its slot back.
            let reserved = limiter.withLockedValue { limiter -> Bool in
                guard limiter.allows(now: time) else { return false }
                limiter.record(now: time)
                return true
            }
            guard reserved else {
                return refuse("Too many accounts were created in the last hour. Please try again later.", .tooManyRequests)
            }
            var created = false
            defer { if !created { limiter.withLockedValue { $0.forget(now: time) } } }
            let spent = (key: stamp.spentKey, expires: (stamp.time ?? Int64(time)) + HashcashStamp.validity)
            let defaultDelay = settings.defaultDelay
            let account = try await onWorkers { [accounts] in
                let account = try accounts.create(name: name, password: password, spentStamp: spent)
                return try accounts.apply(settings: [("delay", defaultDelay.rawValue)], to: account.name)
            }
            created = true
            logger.info("account created on the web")
            sessions.remove(visitor.id)
            let session = sessions.create(AccountVisitor(account: account.name))
            sessions.update(session.id) {
                $0.notice = "Welcome! Your address is \(address). Configure your mail client or the webmail with your account name and password."
            }
            return Response.seeOther("/account", headers: SessionCookie.set(Self.cookie, session.id))
        } catch let error as AccountError {
            return refuse(error.description, error == .stampSpent ? .badRequest : .conflict)
        } catch let error as FormError {
            return refuse(error.description)
        }
    }

    // MARK: the account

    func overview(_ session: WebSession<AccountVisitor>, name: String) async throws -> Response {
        let settings = self.settings
        let time = Int64(now())
        let found: (Account, InternetAllowance)? = try await onWorkers { [accounts, queue] in
            guard let account = try accounts.find(name) else { return nil }
            let allowance = try queue.allowance(accountID: account.id, quota: account.internetQuota ?? settings.internetQuota, now: time)
            return (account, allowance)
        }
        guard let (account, allowance) = found else {
            // Deleted meanwhile (from the CLI, or another browser).
            sessions.remove(session.id)
            return Response.seeOther("/", headers: SessionCookie.clear(Self.cookie))
        }
        var context = base(session, title: "Account")
        let quota = account.quotaBytes ?? settings.mailboxQuota
        context["address"] = "\(account.name)@\(settings.domain)"
        context["usedText"] = ByteSize.describe(account.usedBytes)
        context["quotaText"] = ByteSize.describe(quota)
        context["usedPercent"] = quota > 0 ? min(100, account.usedBytes * 100 / quota) : 0
        context["internetUsed"] = allowance.used
        context["internetQuota"] = allowance.quota
        if allowance.credit > 0 { context["internetCredit"] = allowance.credit }
        if let frees = allowance.freesAt, allowance.used >= allowance.quota {
            context["internetFreesAt"] = RFC5322Date.format(secondsSince1970: frees)
        }
        context["delayModes"] = DelayExplanation.all.map { mode in
            ["value": mode.mode.rawValue, "title": mode.title, "explanation": mode.explanation, "checked": mode.mode == account.delayMode] as [String: Any]
        }
        context["ircNick"] = account.ircNick ?? ""
        if account.ircNick != nil {
            if account.ircVerified {
                context["ircStatus"] = "Verified: notices go to this nick."
            } else if let code = account.ircCode {
                context["ircStatus"] = "Not verified yet. From this nick, send the bot its code: /msg \(settings.ircBotNick ?? "postman") \(code)"
            } else {
                context["ircStatus"] = "Not verified, and its code has expired: save the nick again for a new one."
            }
        }
        if settings.ircBotNick == nil { context["ircOff"] = true }
        context["htmlSanitise"] = account.htmlSanitise
        context["keyListing"] = account.keyListing
        if let keyBook {
            context["keyBook"] = true
            if let key = try await onWorkers({ try keyBook.key(of: account.name) }) {
                var row: [String: Any] = ["fingerprint": KeyBookPages.grouped(key.fingerprint), "created": KeyBookPages.day(key.created),
                                          "algorithm": KeyBookPages.algorithmText(key),
                                          "listed": account.keyListing]
                if let expires = key.expires { row["expires"] = KeyBookPages.day(expires) }
                context["key"] = row
            }
        }
        return pages.page("account", context)
    }

    /// A settings form: logged in, right CSRF token, then `apply`; back to the account page with
    /// its notice, or the form's problem.
    func change(_ request: Request, _ apply: @escaping @Sendable (SubmittedForm, String) async throws -> String) async throws -> Response {
        guard let session = signedIn(request), let name = session.payload.account else { return Response.seeOther("/login") }
        let form = try await request.form(upTo: Self.formLimit)
        guard session.acceptsCSRF(form["csrf"]) else { return staleForm() }
        do {
            let notice = try await apply(form, name)
            sessions.update(session.id) { $0.notice = notice }
        } catch let error as AccountError {
            return pages.problem(error.description, status: .badRequest, back: "/account")
        } catch let error as FormError {
            return pages.problem(error.description, status: .badRequest, back: "/account")
        }
        return Response.seeOther("/account")
    }

    func changePassword(_ request: Request) async throws -> Response {
        guard let session = signedIn(request), let name = session.payload.account else { return Response.seeOther("/login") }
        let form = try await request.form(upTo: Self.formLimit)
        guard session.acceptsCSRF(form["csrf"]) else { return staleForm() }
        let current = try form.required("current", label: "Current password")
        let new = try form.required("new", label: "New password")
        guard new == form["new2"] else { return pages.problem("The two new passwords differ; nothing was changed.", status: .badRequest, back: "/account#password") }
        guard new.count >= PasswordHash.minimumPasswordLength else {
            return pages.problem(AccountError.passwordTooShort.description + "; nothing was changed.", status: .badRequest, back: "/account#password")
        }
        switch await authenticator.verify(username: name, password: current) {
        case .success:
            try await onWorkers { [accounts] in try accounts.setPassword(name, password: new) }
            // Every other browser logged in to this account is logged out; this one gets a new id.
            sessions.removeAll { $0.payload.account == name }
            let fresh = sessions.create(AccountVisitor(account: name))
            sessions.update(fresh.id) { $0.notice = "Password changed. Use the new one in your mail clients and the webmail." }
            return Response.seeOther("/account", headers: SessionCookie.set(Self.cookie, fresh.id))
        case .failure:
            return pages.problem("The current password is wrong; nothing was changed.", status: .forbidden, back: "/account#password")
        case .temporaryFailure:
            return pages.problem("Too many failed attempts just now. Wait a minute and try again.", status: .tooManyRequests, back: "/account#password")
        }
    }

    func deleteAccount(_ request: Request) async throws -> Response {
        guard let session = signedIn(request), let name = session.payload.account else { return Response.seeOther("/login") }
        let form = try await request.form(upTo: Self.formLimit)
        guard session.acceptsCSRF(form["csrf"]) else { return staleForm() }
        let password = try form.required("password", label: "Password")
        guard form["confirm"] == "yes" else {
            return pages.problem("Tick the box that says you understand this is final; nothing was deleted.", status: .badRequest, back: "/account/delete")
        }
        switch await authenticator.verify(username: name, password: password) {
        case .success:
            _ = try await onWorkers { [accounts] in try accounts.delete(name) }
            sessions.removeAll { $0.payload.account == name }
            logger.info("account deleted on the web")
            return pages.page("deleted", ["address": "\(name)@\(settings.domain)", "pageTitle": "Account deleted"],
                              headers: SessionCookie.clear(Self.cookie))
        case .failure:
            return pages.problem("The password is wrong; nothing was deleted.", status: .forbidden, back: "/account/delete")
        case .temporaryFailure:
            return pages.problem("Too many failed attempts just now. Wait a minute and try again.", status: .tooManyRequests, back: "/account/delete")
        }
    }
}

/// The delay modes in plain words: what each one protects against (DELAY-1..4).
struct DelayExplanation: Sendable {
    var mode: DelayMode
    var title: String
    var explanation: String

    static let all = [
        DelayExplanation(mode: .none, title: "None",
                         explanation: "Mail leaves at once. Fastest; someone who watches both you and the gateway can match the time you sent with the time it left."),
        DelayExplanation(mode: .defer, title: "Deferred (default)",
                         explanation: "Each message waits a random while (about half an hour to an hour) before it leaves, so its departure does not mark the moment you wrote it."),
        DelayExplanation(mode: .batch, title: "Batched",
                         explanation: "Messages leave only at fixed times of day, together with everybody else's, in random order: nothing links a departure to you except the day."),
        DelayExplanation(mode: .pool, title: "Pool",
                         explanation: "Messages join a pool from which a random share leaves at regular intervals; a message may wait hours. Strongest against timing analysis, slowest."),
    ]
}
