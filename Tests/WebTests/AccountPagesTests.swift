import Delivery
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOPosix
import Store
import Testing
@testable import Web

// MARK: fixture

private let domain = "postern.i2p"
private let quietLogger = Logger(label: "web-tests", factory: { _ in SwiftLogNoOpLogHandler() })
private let password = "correct horse battery"

/// The account pages over a fresh data folder, with cheap scrypt and a hand-moved clock.
struct AccountFixture: Sendable {
    let accounts: AccountStore
    let authenticator: Authenticator
    let pages: AccountPages
    let clock: ManualClock

    func account(_ name: String) throws -> Account? { try accounts.find(name) }

    /// A stamp for `name@domain` dated now.
    func stamp(for name: String, bits: Int = 8) -> String {
        var random = SystemRandomNumberGenerator()
        return HashcashStamp.mint(resource: "\(name)@\(domain)", bits: bits, now: Int64(clock.now), random: &random).description
    }
}

private func withAccountPages(signupsPerHour: Int = 100, sessionIdle: Double = 1800,
                              _ body: @Sendable (AccountFixture, any TestClientProtocol) async throws -> Void) async throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("postern-web-tests-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let folder = try DataFolder(path: path)
    let accounts = AccountStore(folder: folder, policy: AccountNamePolicy(domain: domain), quarantineDays: 180,
                                hashParameters: PasswordHash.Parameters(log2N: 10, r: 8, p: 1))
    let authenticator = Authenticator(accounts: accounts, backoff: LoginBackoff(base: 0.01, maximum: 0.02), logger: quietLogger)
    let queue = OutboundQueue(folder: folder)
    let workers = NIOThreadPool(numberOfThreads: 2)
    workers.start()
    let clock = ManualClock(Date().timeIntervalSince1970.rounded())
    let settings = AccountPagesSettings(domain: domain, mailboxQuota: 50 << 20, internetQuota: 20, signupBits: 8,
                                        signupsPerHour: signupsPerHour, defaultDelay: .pool, quarantineDays: 180, sessionIdle: sessionIdle)
    do {
        let pages = try AccountPages(accounts: accounts, authenticator: authenticator, queue: queue, workers: workers,
                                     settings: settings, logger: quietLogger, now: clock.reading)
        let fixture = AccountFixture(accounts: accounts, authenticator: authenticator, pages: pages, clock: clock)
        let app = Application(router: pages.router(), logger: quietLogger)
        try await app.test(.router) { client in try await body(fixture, client) }
    } catch {
        await authenticator.shutdown()
        try? await workers.shutdownGracefully()
        throw error
    }
    await authenticator.shutdown()
    try await workers.shutdownGracefully()
}

/// One browser: keeps its cookie like a browser does.
struct Browser {
    let client: any TestClientProtocol
    var cookie: String?

    init(_ client: any TestClientProtocol) { self.client = client }

    var requestHeaders: HTTPFields {
        guard let cookie else { return [:] }
        return [.cookie: "\(AccountPages.cookie)=\(cookie)"]
    }

    mutating func absorb(_ response: TestResponse) {
        guard let set = response.headers[.setCookie] else { return }
        let pair = set.split(separator: ";", maxSplits: 1)[0]
        let value = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard value.count == 2, value[0] == AccountPages.cookie else { return }
        cookie = value[1].isEmpty || set.contains("Max-Age=0") ? nil : String(value[1])
    }

    mutating func get(_ uri: String) async throws -> TestResponse {
        let response = try await client.execute(uri: uri, method: .get, headers: requestHeaders)
        absorb(response)
        return response
    }

    mutating func post(_ uri: String, body: [UInt8], contentType: String = "application/x-www-form-urlencoded") async throws -> TestResponse {
        var headers = requestHeaders
        headers[.contentType] = contentType
        let response = try await client.execute(uri: uri, method: .post, headers: headers, body: ByteBuffer(bytes: body))
        absorb(response)
        return response
    }

    mutating func post(_ uri: String, _ fields: [(String, String)]) async throws -> TestResponse {
        try await post(uri, body: Array(formEncoded(fields).utf8))
    }

    /// Fetches `page` for its CSRF token, then posts `fields` with it to `uri`.
    mutating func submit(_ uri: String, from page: String, _ fields: [(String, String)]) async throws -> TestResponse {
        let token = try csrfToken(in: try await get(page))
        return try await post(uri, [("csrf", token)] + fields)
    }

    mutating func signup(_ name: String, stamp: String, password: String = password) async throws -> TestResponse {
        try await submit("/signup", from: "/signup", [("name", name), ("password", password), ("password2", password), ("stamp", stamp)])
    }

    mutating func login(_ name: String, password: String = password) async throws -> TestResponse {
        try await submit("/login", from: "/login", [("name", name), ("password", password)])
    }
}

func formEncoded(_ fields: [(String, String)]) -> String {
    let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
    return fields.map { "\($0.0.addingPercentEncoding(withAllowedCharacters: unreserved)!)=\($0.1.addingPercentEncoding(withAllowedCharacters: unreserved)!)" }
        .joined(separator: "&")
}

func csrfToken(in response: TestResponse) throws -> String {
    let html = String(buffer: response.body)
    let marker = #"name="csrf" value=""#
    let start = try #require(html.range(of: marker), "no CSRF field on the page").upperBound
    let end = try #require(html[start...].firstIndex(of: "\""))
    return String(html[start..<end])
}

/// The page's text with the template engine's escapes undone.
func pageText(_ response: TestResponse) -> String {
    String(buffer: response.body)
        .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
        .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&amp;", with: "&")
}

/// The text of the page's `<p class="error">` paragraph.
func errorText(_ response: TestResponse) -> String? {
    let text = pageText(response)
    guard let start = text.range(of: #"<p class="error" role="alert">"#)?.upperBound,
          let end = text[start...].range(of: "</p>")?.lowerBound else { return nil }
    return String(text[start..<end])
}

func expectSecurityHeaders(_ response: TestResponse, cache: String = "no-store", sourceLocation: SourceLocation = #_sourceLocation) {
    let csp = response.headers[HTTPField.Name("Content-Security-Policy")!]
    #expect(csp == SecurityPolicy.pages.contentSecurityPolicy, sourceLocation: sourceLocation)
    #expect(csp?.contains("default-src 'none'") == true, sourceLocation: sourceLocation)
    #expect(csp?.contains("frame-ancestors 'none'") == true, sourceLocation: sourceLocation)
    #expect(csp?.contains("script-src 'self'") == true, sourceLocation: sourceLocation)
    #expect(response.headers[HTTPField.Name("X-Frame-Options")!] == "DENY", sourceLocation: sourceLocation)
    #expect(response.headers[HTTPField.Name("Referrer-Policy")!] == "no-referrer", sourceLocation: sourceLocation)
    #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff", sourceLocation: sourceLocation)
    #expect(response.headers[values: .cacheControl] == [cache], sourceLocation: sourceLocation)
    #expect(response.headers[values: HTTPField.Name("Content-Security-Policy")!].count == 1, sourceLocation: sourceLocation)
}

func expectProblemPage(_ response: TestResponse, _ status: HTTPResponse.Status, _ message: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(response.status == status, sourceLocation: sourceLocation)
    #expect(response.headers[.contentType] == "text/html; charset=utf-8", sourceLocation: sourceLocation)
    #expect(errorText(response) == message, sourceLocation: sourceLocation)
    #expect(pageText(response).contains("<h1>\(status.code) \(status.reasonPhrase)</h1>"), sourceLocation: sourceLocation)
    expectSecurityHeaders(response, sourceLocation: sourceLocation)
}

private let staleMessage = "This form has expired or did not come from this site. Reload the page and try again."

// MARK: tests

@Suite("Account pages")
struct AccountPagesTests {
    @Test func securityHeadersOnEveryResponse() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            for uri in ["/", "/login", "/signup"] {
                let response = try await browser.get(uri)
                #expect(response.status == .ok, "\(uri)")
                #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                expectSecurityHeaders(response)
            }
            // Redirects made for a visitor.
            let account = try await browser.get("/account")
            #expect(account.status == .seeOther)
            #expect(account.headers[.location] == "/login")
            expectSecurityHeaders(account)
            // Not found: a page, not an empty body.
            let missing = try await browser.get("/no/such/page")
            expectProblemPage(missing, .notFound, "There is no such page.")
            // Static files: the same policy, cacheable (they show nothing of an account).
            let css = try await browser.get("/static/style.css")
            #expect(css.status == .ok)
            #expect(css.headers[.contentType] == "text/css; charset=utf-8")
            expectSecurityHeaders(css, cache: "max-age=3600")
            let script = try await browser.get("/static/pow.js")
            #expect(script.status == .ok)
            #expect(script.headers[.contentType]?.contains("javascript") == true)
            #expect(script.body.readableBytes > 0)
            expectSecurityHeaders(script, cache: "max-age=3600")
            // After a sign-up, the logged-in pages and the form answers too.
            _ = try await browser.signup("alice", stamp: fixture.stamp(for: "alice"))
            for uri in ["/account", "/account/delete", "/"] {
                expectSecurityHeaders(try await browser.get(uri))
            }
            expectSecurityHeaders(try await browser.submit("/account/delay", from: "/account", [("delay", "none")]))
        }
    }

    @Test func visitorCookieAndCSRFToken() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            let page = try await browser.get("/signup")
            #expect(page.status == .ok)
            let setCookie = try #require(page.headers[.setCookie])
            let id = try #require(browser.cookie)
            #expect(id.count == 43)
            #expect(setCookie == "postern_account=\(id); Path=/; HttpOnly; SameSite=Strict")
            let token = try csrfToken(in: page)
            #expect(token.count == 43)
            #expect(token != id)
            #expect(fixture.pages.sessions.find(id)?.csrfToken == token)
            #expect(pageText(page).contains(#"data-bits="8""#))
            // The same browser keeps its session: no new cookie, the same token.
            let again = try await browser.get("/login")
            #expect(again.headers[.setCookie] == nil)
            #expect(try csrfToken(in: again) == token)
            // Another browser gets another session.
            var other = Browser(client)
            let otherPage = try await other.get("/signup")
            #expect(other.cookie != nil && other.cookie != id)
            #expect(try csrfToken(in: otherPage) != token)
        }
    }

    @Test func signupCreatesTheAccountAndANewSession() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            let form = try await browser.get("/signup")
            let visitorID = try #require(browser.cookie)
            let response = try await browser.post("/signup", [("csrf", try csrfToken(in: form)), ("name", "alice"), ("password", password),
                                                              ("password2", password), ("stamp", fixture.stamp(for: "alice"))])
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/account")
            expectSecurityHeaders(response)
            let loggedIn = try #require(browser.cookie)
            // No session fixation: a new id, and the visitor's is gone.
            #expect(loggedIn != visitorID)
            #expect(fixture.pages.sessions.find(visitorID) == nil)
            #expect(response.headers[.setCookie] == "postern_account=\(loggedIn); Path=/; HttpOnly; SameSite=Strict")

            let account = try #require(try fixture.account("alice"))
            #expect(account.delayMode == .pool)
            if case .success(let verified) = await fixture.authenticator.verify(username: "alice", password: password) {
                #expect(verified.name == "alice")
            } else {
                Issue.record("the new account's password does not verify")
            }

            let overview = try await browser.get("/account")
            #expect(overview.status == .ok)
            let text = pageText(overview)
            #expect(text.contains("<h1>alice@postern.i2p</h1>"))
            #expect(text.contains("Welcome! Your address is alice@postern.i2p."))
            #expect(text.contains(#"<input type="radio" name="delay" value="pool" checked>"#))
            // The notice is shown once.
            #expect(!pageText(try await browser.get("/account")).contains("Welcome!"))
            // The home page sends a logged-in browser on to its account.
            let home = try await browser.get("/")
            #expect(home.status == .seeOther)
            #expect(home.headers[.location] == "/account")
        }
    }

    @Test func stampCannotBeUsedTwice() async throws {
        try await withAccountPages { fixture, client in
            let stamp = fixture.stamp(for: "alice")
            var first = Browser(client)
            #expect(try await first.signup("alice", stamp: stamp).status == .seeOther)
            var second = Browser(client)
            let again = try await second.signup("alice", stamp: stamp)
            #expect(again.status == .conflict)
            #expect(errorText(again) == "an account named alice already exists")
            #expect(try fixture.accounts.all().count == 1)

            // A stamp already spent (on another account made with it) is refused as such.
            let bobStamp = fixture.stamp(for: "bob")
            let parsed = try HashcashStamp.parse(bobStamp)
            _ = try fixture.accounts.create(name: "carol", password: password, spentStamp: (parsed.spentKey, Int64(fixture.clock.now) + 86400))
            var third = Browser(client)
            let spent = try await third.signup("bob", stamp: bobStamp)
            #expect(spent.status == .badRequest)
            #expect(errorText(spent) == "this proof-of-work stamp was already used: make a new one")
            #expect(try fixture.account("bob") == nil)
            #expect(third.cookie != nil)
            // The refused form keeps the name, never the password.
            #expect(pageText(spent).contains(#"value="bob""#))
            #expect(!pageText(spent).contains(password))
        }
    }

    @Test func stampForAnotherAddressOrTooFewBits() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            let wrongAddress = try await browser.signup("alice", stamp: fixture.stamp(for: "bob"))
            #expect(wrongAddress.status == .badRequest)
            let message = try #require(errorText(wrongAddress))
            #expect(message.hasPrefix("The proof of work is not valid for alice@postern.i2p: hashcash stamp is for bob@postern.i2p, not for this account's address."))
            #expect(message.hasSuffix("postern hashcash mint --bits 8 alice@postern.i2p."))
            expectSecurityHeaders(wrongAddress)

            let weak = try await browser.signup("alice", stamp: fixture.stamp(for: "alice", bits: 4))
            #expect(weak.status == .badRequest)
            #expect(errorText(weak)?.contains("hashcash stamp has 4 bits, 8 are required") == true)

            let garbage = try await browser.signup("alice", stamp: "1:8:garbage")
            #expect(garbage.status == .badRequest)
            #expect(errorText(garbage)?.hasPrefix("The proof of work is not valid for alice@postern.i2p: malformed hashcash stamp: expected 7 fields separated by ':', found 3.") == true)
            // What was typed comes back in the field, escaped.
            #expect(String(buffer: garbage.body).contains(#"name="stamp" value="1:8:garbage""#))
            let version = try await browser.signup("alice", stamp: "<b>not a stamp</b>")
            #expect(errorText(version) == "The proof of work is not valid for alice@postern.i2p: hashcash stamp is not version 1. Make a new one with postern hashcash mint --bits 8 alice@postern.i2p.")
            #expect(!String(buffer: version.body).contains("<b>not a stamp</b>"))
            #expect(String(buffer: version.body).contains("&lt;b&gt;not a stamp&lt;/b&gt;"))

            let missing = try await browser.submit("/signup", from: "/signup", [("name", "alice"), ("password", password), ("password2", password)])
            #expect(missing.status == .badRequest)
            #expect(errorText(missing) == "Proof of work is missing.")

            let differ = try await browser.submit("/signup", from: "/signup", [("name", "alice"), ("password", password), ("password2", password + "x"),
                                                                             ("stamp", fixture.stamp(for: "alice"))])
            #expect(differ.status == .badRequest)
            #expect(errorText(differ) == "The two passwords differ.")

            let reserved = try await browser.signup("postmaster", stamp: fixture.stamp(for: "postmaster"))
            #expect(reserved.status == .conflict)
            #expect(errorText(reserved) == "the name postmaster is reserved")

            #expect(try fixture.accounts.all().isEmpty)
        }
    }

    @Test func hourlySignupLimit() async throws {
        try await withAccountPages(signupsPerHour: 1) { fixture, client in
            var first = Browser(client)
            #expect(try await first.signup("alice", stamp: fixture.stamp(for: "alice")).status == .seeOther)
            var second = Browser(client)
            let refused = try await second.signup("bob", stamp: fixture.stamp(for: "bob"))
            #expect(refused.status == .tooManyRequests)
            #expect(errorText(refused) == "Too many accounts were created in the last hour. Please try again later.")
            #expect(try fixture.account("bob") == nil)
            expectSecurityHeaders(refused)
            // An hour later there is room again (the stamp is still valid and unspent).
            fixture.clock.advance(3601)
            var third = Browser(client)
            #expect(try await third.signup("bob", stamp: fixture.stamp(for: "bob")).status == .seeOther)
            #expect(try fixture.account("bob") != nil)
        }
    }

    @Test func hourlySignupLimitHoldsForConcurrentSignups() async throws {
        try await withAccountPages(signupsPerHour: 1) { fixture, client in
            // Each browser has its form ready; then all submit at once.
            var forms: [(Browser, [(String, String)])] = []
            for index in 0..<8 {
                var browser = Browser(client)
                let token = try csrfToken(in: try await browser.get("/signup"))
                let name = "user\(index)"
                forms.append((browser, [("csrf", token), ("name", name), ("password", password), ("password2", password),
                                        ("stamp", fixture.stamp(for: name))]))
            }
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for (browser, fields) in forms {
                    group.addTask {
                        var browser = browser
                        return try await browser.post("/signup", fields).status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = try fixture.accounts.all().count
            #expect(statuses.filter { $0 == .seeOther }.count == created)
            #expect(created == 1)
            #expect(statuses.filter { $0 == .tooManyRequests }.count == 7)
        }
    }

    @Test func loginDoesNotTellUnknownNamesFromWrongPasswords() async throws {
        try await withAccountPages { fixture, client in
            _ = try fixture.accounts.create(name: "alice", password: password)
            var browser = Browser(client)
            let wrongPassword = try await browser.login("alice", password: "not the password")
            let unknownName = try await browser.login("zoe", password: "not the password")
            #expect(wrongPassword.status == .unauthorized)
            #expect(unknownName.status == wrongPassword.status)
            #expect(errorText(wrongPassword) == "Wrong account name or password.")
            #expect(errorText(unknownName) == errorText(wrongPassword))
            // The whole pages differ only in the name typed back into the form.
            #expect(pageText(wrongPassword).replacingOccurrences(of: #"value="alice""#, with: "")
                == pageText(unknownName).replacingOccurrences(of: #"value="zoe""#, with: ""))
            #expect(wrongPassword.headers[.setCookie] == nil)

            let visitor = try #require(browser.cookie)
            let good = try await browser.login("alice")
            #expect(good.status == .seeOther)
            #expect(good.headers[.location] == "/account")
            #expect(browser.cookie != visitor)
            #expect(fixture.pages.sessions.find(visitor) == nil)
            #expect(try await browser.get("/account").status == .ok)
        }
    }

    @Test func postsWithoutTheRightCSRFTokenAreRefused() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            _ = try await browser.signup("alice", stamp: fixture.stamp(for: "alice"))
            _ = try await browser.get("/account")
            let before = try #require(try fixture.account("alice"))

            let without = try await browser.post("/account/delay", [("delay", "none")])
            expectProblemPage(without, .forbidden, staleMessage)
            let wrong = try await browser.post("/account/delay", [("csrf", String(repeating: "A", count: 43)), ("delay", "none")])
            expectProblemPage(wrong, .forbidden, staleMessage)
            // Another session's token is no good either.
            var other = Browser(client)
            let otherToken = try csrfToken(in: try await other.get("/login"))
            expectProblemPage(try await browser.post("/account/delay", [("csrf", otherToken), ("delay", "none")]), .forbidden, staleMessage)
            expectProblemPage(try await browser.post("/account/irc", [("irc_nick", "mallory")]), .forbidden, staleMessage)
            expectProblemPage(try await browser.post("/account/options", [("csrf", ""), ("key_listing", "on")]), .forbidden, staleMessage)
            expectProblemPage(try await browser.post("/account/password", [("current", password), ("new", "another password"), ("new2", "another password")]),
                              .forbidden, staleMessage)
            expectProblemPage(try await browser.post("/account/delete", [("password", password), ("confirm", "yes")]), .forbidden, staleMessage)
            expectProblemPage(try await browser.post("/logout", [("csrf", "x")]), .forbidden, staleMessage)
            #expect(try fixture.account("alice") == before)
            // Still logged in.
            #expect(try await browser.get("/account").status == .ok)

            // Login and sign-up without a session or token are refused too.
            var stranger = Browser(client)
            expectProblemPage(try await stranger.post("/login", [("name", "alice"), ("password", password)]), .forbidden, staleMessage)
            expectProblemPage(try await stranger.post("/signup", [("name", "bob"), ("password", password), ("password2", password),
                                                                   ("stamp", fixture.stamp(for: "bob"))]), .forbidden, staleMessage)
            _ = try await stranger.get("/login")
            expectProblemPage(try await stranger.post("/login", [("csrf", "nope"), ("name", "alice"), ("password", password)]), .forbidden, staleMessage)
            #expect(try fixture.account("bob") == nil)

            // A logged-out visitor posting a settings form is sent to the login page.
            let loggedOut = try await stranger.post("/account/delay", [("csrf", "x"), ("delay", "none")])
            #expect(loggedOut.status == .seeOther)
            #expect(loggedOut.headers[.location] == "/login")
        }
    }

    @Test func settingsForms() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            _ = try await browser.signup("alice", stamp: fixture.stamp(for: "alice"))

            let delay = try await browser.submit("/account/delay", from: "/account", [("delay", "none")])
            #expect(delay.status == .seeOther)
            #expect(delay.headers[.location] == "/account")
            #expect(try fixture.account("alice")?.delayMode == DelayMode.none)
            let page = pageText(try await browser.get("/account"))
            #expect(page.contains("Delay saved: none."))
            #expect(page.contains(#"<input type="radio" name="delay" value="none" checked>"#))

            expectProblemPage(try await browser.submit("/account/delay", from: "/account", [("delay", "fast")]), .badRequest, "Choose one of the delay modes.")
            expectProblemPage(try await browser.submit("/account/delay", from: "/account", []), .badRequest, "Delay is missing.")
            #expect(try fixture.account("alice")?.delayMode == DelayMode.none)

            let nick = try await browser.submit("/account/irc", from: "/account", [("irc_nick", " alice_irc ")])
            #expect(nick.status == .seeOther)
            #expect(try fixture.account("alice")?.ircNick == "alice_irc")
            #expect(pageText(try await browser.get("/account")).contains("IRC nick saved: alice_irc."))
            expectProblemPage(try await browser.submit("/account/irc", from: "/account", [("irc_nick", "1abc")]), .badRequest,
                              "irc_nick: not a valid IRC nickname (RFC 2812 2.3.1)")
            expectProblemPage(try await browser.submit("/account/irc", from: "/account", [("irc_nick", "bad nick")]), .badRequest,
                              "irc_nick: not a valid IRC nickname (RFC 2812 2.3.1)")
            expectProblemPage(try await browser.submit("/account/irc", from: "/account", [("irc_nick", String(repeating: "n", count: 31))]), .badRequest,
                              "IRC nick is longer than 30 characters.")
            #expect(try fixture.account("alice")?.ircNick == "alice_irc")
            #expect(try await browser.submit("/account/irc", from: "/account", [("irc_nick", "")]).status == .seeOther)
            #expect(try fixture.account("alice")?.ircNick == nil)
            #expect(pageText(try await browser.get("/account")).contains("IRC notices turned off."))

            let on = try await browser.submit("/account/options", from: "/account", [("html_sanitise", "on"), ("key_listing", "on")])
            #expect(on.status == .seeOther)
            var account = try #require(try fixture.account("alice"))
            #expect(account.htmlSanitise && account.keyListing)
            let onPage = pageText(try await browser.get("/account"))
            #expect(onPage.contains("Privacy options saved."))
            #expect(onPage.contains(#"name="key_listing" value="on" checked"#))
            // Unticked boxes are not sent: both off.
            #expect(try await browser.submit("/account/options", from: "/account", []).status == .seeOther)
            account = try #require(try fixture.account("alice"))
            #expect(!account.htmlSanitise && !account.keyListing)
            #expect(try await browser.submit("/account/options", from: "/account", [("key_listing", "on")]).status == .seeOther)
            account = try #require(try fixture.account("alice"))
            #expect(!account.htmlSanitise && account.keyListing)
        }
    }

    @Test func passwordChangeLogsOutOtherSessions() async throws {
        try await withAccountPages { fixture, client in
            var first = Browser(client)
            _ = try await first.signup("alice", stamp: fixture.stamp(for: "alice"))
            var second = Browser(client)
            #expect(try await second.login("alice").status == .seeOther)
            #expect(try await second.get("/account").status == .ok)
            let firstID = try #require(first.cookie)

            expectProblemPage(try await first.submit("/account/password", from: "/account", [("current", "wrong password"), ("new", "brand new password"), ("new2", "brand new password")]),
                              .forbidden, "The current password is wrong; nothing was changed.")
            expectProblemPage(try await first.submit("/account/password", from: "/account", [("current", password), ("new", "brand new password"), ("new2", "brand new passwort")]),
                              .badRequest, "The two new passwords differ; nothing was changed.")
            expectProblemPage(try await first.submit("/account/password", from: "/account", [("current", password), ("new", "short"), ("new2", "short")]),
                              .badRequest, "the password must be at least 10 characters long; nothing was changed.")
            #expect(try await second.get("/account").status == .ok)

            let changed = try await first.submit("/account/password", from: "/account",
                                                 [("current", password), ("new", "brand new password"), ("new2", "brand new password")])
            #expect(changed.status == .seeOther)
            #expect(changed.headers[.location] == "/account")
            #expect(first.cookie != nil && first.cookie != firstID)
            #expect(pageText(try await first.get("/account")).contains("Password changed."))

            let kicked = try await second.get("/account")
            #expect(kicked.status == .seeOther)
            #expect(kicked.headers[.location] == "/login")
            #expect(fixture.pages.sessions.find(firstID) == nil)

            #expect(await fixture.authenticator.verify(username: "alice", password: "brand new password") != .failure)
            #expect(await fixture.authenticator.verify(username: "alice", password: password) == .failure)
            try await Task.sleep(nanoseconds: 50_000_000)  // past the back-off of that failure
            #expect(try await second.login("alice", password: "brand new password").status == .seeOther)
        }
    }

    @Test func deleteNeedsConfirmationAndPassword() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            _ = try await browser.signup("alice", stamp: fixture.stamp(for: "alice"))
            var other = Browser(client)
            _ = try await other.login("alice")

            let page = try await browser.get("/account/delete")
            #expect(page.status == .ok)
            #expect(pageText(page).contains("The name stays reserved for 180 days"))

            expectProblemPage(try await browser.submit("/account/delete", from: "/account/delete", [("password", password)]), .badRequest,
                              "Tick the box that says you understand this is final; nothing was deleted.")
            expectProblemPage(try await browser.submit("/account/delete", from: "/account/delete", [("password", password), ("confirm", "on")]), .badRequest,
                              "Tick the box that says you understand this is final; nothing was deleted.")
            expectProblemPage(try await browser.submit("/account/delete", from: "/account/delete", [("password", "wrong password"), ("confirm", "yes")]),
                              .forbidden, "The password is wrong; nothing was deleted.")
            expectProblemPage(try await browser.submit("/account/delete", from: "/account/delete", [("confirm", "yes")]), .badRequest, "Password is missing.")
            #expect(try fixture.account("alice") != nil)
            try await Task.sleep(nanoseconds: 50_000_000)  // past the back-off of the wrong password

            let deleted = try await browser.submit("/account/delete", from: "/account/delete", [("password", password), ("confirm", "yes")])
            #expect(deleted.status == .ok)
            #expect(deleted.headers[.setCookie] == "postern_account=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
            #expect(pageText(deleted).contains("alice@postern.i2p and everything in it are gone."))
            expectSecurityHeaders(deleted)
            #expect(try fixture.account("alice") == nil)
            #expect(fixture.pages.sessions.find(other.cookie) == nil)

            let afterwards = try await other.get("/account")
            #expect(afterwards.status == .seeOther)
            #expect(afterwards.headers[.location] == "/login")
            // The name is quarantined: a new sign-up for it is refused.
            var newcomer = Browser(client)
            let again = try await newcomer.signup("alice", stamp: fixture.stamp(for: "alice"))
            #expect(again.status == .conflict)
            #expect(errorText(again)?.hasPrefix("the name alice belonged to a deleted account") == true)
        }
    }

    @Test func logoutEndsTheSession() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            _ = try await browser.signup("alice", stamp: fixture.stamp(for: "alice"))
            let id = try #require(browser.cookie)
            let out = try await browser.submit("/logout", from: "/account", [])
            #expect(out.status == .seeOther)
            #expect(out.headers[.location] == "/")
            #expect(browser.cookie == nil)
            #expect(fixture.pages.sessions.find(id) == nil)
            #expect(try await browser.get("/account").headers[.location] == "/login")
        }
    }

    @Test func idleSessionsEnd() async throws {
        try await withAccountPages(sessionIdle: 600) { fixture, client in
            var browser = Browser(client)
            _ = try await browser.signup("alice", stamp: fixture.stamp(for: "alice"))
            fixture.clock.advance(599)
            #expect(try await browser.get("/account").status == .ok)
            fixture.clock.advance(599)
            #expect(try await browser.get("/account").status == .ok)
            fixture.clock.advance(600)
            let expired = try await browser.get("/account")
            #expect(expired.status == .seeOther)
            #expect(expired.headers[.location] == "/login")
        }
    }

    @Test func oversizedBodyIsA413Page() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            let token = try csrfToken(in: try await browser.get("/login"))
            let body = Array("csrf=\(token)&name=alice&password=".utf8) + Array(repeating: UInt8(ascii: "a"), count: 17 * 1024)
            let response = try await browser.post("/login", body: body)
            expectProblemPage(response, .contentTooLarge, "What was sent is too large.")
            _ = try await browser.signup("alice", stamp: fixture.stamp(for: "alice"))
            let settings = try await browser.post("/account/irc", body: Array(repeating: UInt8(ascii: "b"), count: 100_000))
            expectProblemPage(settings, .contentTooLarge, "What was sent is too large.")
        }
    }

    @Test func malformedFormsAre400Pages() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            let token = try csrfToken(in: try await browser.get("/login"))
            let cases: [(body: [UInt8], type: String, message: String)] = [
                (Array("csrf=\(token)&name=%zz".utf8), "application/x-www-form-urlencoded", "The form is not correctly encoded."),
                (Array("csrf=\(token)&name=%".utf8), "application/x-www-form-urlencoded", "The form is not correctly encoded."),
                (Array("csrf=\(token)&name=%ff".utf8), "application/x-www-form-urlencoded", "The form is not valid UTF-8."),
                (Array("csrf=\(token)&name=a%00".utf8), "application/x-www-form-urlencoded", "The form contains a NUL character."),
                (Array("csrf=\(token)&name=a".utf8) + [0xFE], "application/x-www-form-urlencoded", "The form is not valid UTF-8."),
                (Array("--x\r\n".utf8), "multipart/form-data", "The upload is not multipart/form-data."),
                (Array((1...70).map { "f\($0)=1" }.joined(separator: "&").utf8), "application/x-www-form-urlencoded", "The form has too many fields."),
            ]
            for item in cases {
                for uri in ["/login", "/signup"] {
                    let response = try await browser.post(uri, body: item.body, contentType: item.type)
                    expectProblemPage(response, .badRequest, item.message)
                }
            }
            // A form without a required field: the login page again, with the reason.
            let noName = try await browser.post("/login", [("csrf", token), ("password", password)])
            expectProblemPage(noName, .badRequest, "Account name is missing.")
            // A multipart login is read like any other form.
            let boundary = "XyZ"
            let multipart = "--\(boundary)\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n\(token)\r\n"
                + "--\(boundary)\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nnobody\r\n"
                + "--\(boundary)\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nwhatever it is\r\n--\(boundary)--\r\n"
            let read = try await browser.post("/login", body: Array(multipart.utf8), contentType: "multipart/form-data; boundary=\(boundary)")
            #expect(read.status == .unauthorized)
            #expect(errorText(read) == "Wrong account name or password.")
        }
    }

    @Test func nothingAnswersWithA500OrAnEmptyBody() async throws {
        try await withAccountPages { fixture, client in
            var browser = Browser(client)
            _ = try await browser.signup("alice", stamp: fixture.stamp(for: "alice"))
            let token = try csrfToken(in: try await browser.get("/account"))
            let requests: [(HTTPRequest.Method, String, [UInt8])] = [
                (.get, "/nothing", []), (.post, "/nothing", []), (.get, "/static/", []), (.get, "/static/../Package.swift", []),
                (.put, "/account", []), (.delete, "/account/delete", []), (.post, "/account/delay", Array("csrf=\(token)&delay=%".utf8)),
                (.post, "/account/delay", Array("csrf=\(token)".utf8)), (.post, "/account/password", Array("csrf=\(token)".utf8)),
                (.post, "/account/delete", Array("csrf=\(token)&password=".utf8)),
            ]
            for (method, uri, body) in requests {
                var headers = browser.requestHeaders
                headers[.contentType] = "application/x-www-form-urlencoded"
                let response = try await client.execute(uri: uri, method: method, headers: headers, body: ByteBuffer(bytes: body))
                #expect(response.status != .internalServerError, "\(method) \(uri)")
                #expect(response.status.code >= 300, "\(method) \(uri)")
                if response.status != .seeOther { #expect(response.body.readableBytes > 0, "\(method) \(uri)") }
                expectSecurityHeaders(response)
            }
            #expect(try fixture.account("alice") != nil)
        }
    }
}
