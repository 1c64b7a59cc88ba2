import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Testing
import Wire
@testable import Web

@Suite("Webmail: message references")
struct MessageRefTests {
    @Test func parse() {
        #expect(MessageRef("i:17.abc") == .inbox("17.abc"))
        #expect(MessageRef("l:0f3e") == .local("0f3e"))
        #expect(MessageRef("i:i:x") == .inbox("i:x"))
        #expect(MessageRef("l: ") == .local(" "))
    }

    @Test(arguments: [nil, "", "i", "l", "i:", "l:", "x:abc", "abc", "I:abc", " i:abc", "inbox:abc", ":abc"] as [String?])
    func refusals(_ text: String?) {
        #expect(MessageRef(text) == nil)
    }

    @Test func lengthLimit() {
        let longest = "i:" + String(repeating: "u", count: 198)
        #expect(MessageRef(longest) == .inbox(String(repeating: "u", count: 198)))
        #expect(MessageRef(longest + "u") == nil)
        #expect(MessageRef("l:" + String(repeating: "é", count: 199)) == nil)
    }

    @Test(arguments: [MessageRef.inbox("17.abc"), .local("0f3e"), .inbox("a b/c?d=e&f#g"), .local("é+%"), .inbox("~-._")])
    func textAndQueryRoundTrip(_ ref: MessageRef) throws {
        #expect(MessageRef(ref.text) == ref)
        // The query form carries only unreserved characters and decodes back to the text.
        let unreserved = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%")
        #expect(ref.query.allSatisfy { unreserved.contains($0) })
        #expect(ref.query.removingPercentEncoding == ref.text)
        // As the router reads it back out of a URI.
        let decoded = URI("/message?ref=\(ref.query)").queryParameters["ref"].map(String.init)
        #expect(MessageRef(decoded) == ref)
    }

    @Test func queryEncoding() {
        #expect(MessageRef.inbox("a b/c").text == "i:a b/c")
        #expect(MessageRef.inbox("a b/c").query == "i%3Aa%20b%2Fc")
        #expect(MessageRef.local("x+y&z").query == "l%3Ax%2By%26z")
        #expect(MessageRef.encode("é") == "%C3%A9")
    }
}

@Suite("Webmail: pure helpers")
struct WebmailHelperTests {
    @Test func contentDispositionPlainASCII() {
        #expect(Webmail.contentDisposition("report.pdf") == "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf")
    }

    @Test func contentDispositionFallbackAndRFC8187() {
        #expect(Webmail.contentDisposition("a\"b\\c é.pdf")
            == "attachment; filename=\"a_b_c _.pdf\"; filename*=UTF-8''a%22b%5Cc%20%C3%A9.pdf")
        #expect(Webmail.contentDisposition("日本.txt") == "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt")
        // Control characters never reach the quoted string (they would end or split the header).
        #expect(Webmail.contentDisposition("a\r\nb\tc") == "attachment; filename=\"a__b_c\"; filename*=UTF-8''a%0D%0Ab%09c")
        // One fallback character per Unicode scalar; an emoji is one scalar, 4 UTF-8 bytes.
        #expect(Webmail.contentDisposition("😀") == "attachment; filename=\"_\"; filename*=UTF-8''%F0%9F%98%80")
        // Characters RFC 8187 attr-char does not allow are escaped: ' ; , ( ) and so on.
        #expect(Webmail.contentDisposition("it's;a,(b).x") == "attachment; filename=\"it's;a,(b).x\"; filename*=UTF-8''it%27s%3Ba%2C%28b%29.x")
    }

    @Test func contentDispositionFallbackHasNoDEL() {
        // DEL (0x7F) is a control character: not qdtext in a quoted-string (RFC 9110 5.6.4).
        #expect(Webmail.contentDisposition("a\u{7F}b") == "attachment; filename=\"a_b\"; filename*=UTF-8''a%7Fb")
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01 00:00"),
        (-1, "1969-12-31 23:59"),
        (-86400, "1969-12-31 00:00"),
        (-86401, "1969-12-30 23:59"),
        (1_700_000_000, "2023-11-14 22:13"),
        (951_785_999, "2000-02-29 00:59"),
        (4_102_444_799, "2099-12-31 23:59"),
    ])
    func shortDate(_ seconds: Int64, _ expected: String) {
        #expect(Webmail.shortDate(seconds) == expected)
    }

    @Test func draftBccRoundTrip() {
        let message = Array("From: me@postern.i2p\r\nTo: you@example.org\r\nSubject: hi\r\n\r\nBody\r\nBcc: not-a-header@x\r\n".utf8)
        let stored = Webmail.withDraftBcc(message, bcc: ["a@postern.i2p", "b@example.org"])
        #expect(stored.starts(with: Array("Bcc: a@postern.i2p, b@example.org\r\n".utf8)))
        #expect(Array(stored.dropFirst("Bcc: a@postern.i2p, b@example.org\r\n".utf8.count)) == message)
        #expect(Webmail.draftBcc(stored) == "a@postern.i2p, b@example.org")
        // Without Bcc the message is unchanged and reads back empty (a Bcc: line in the body is not a header).
        #expect(Webmail.withDraftBcc(message, bcc: []) == message)
        #expect(Webmail.draftBcc(message) == "")
        #expect(Webmail.draftBcc(Webmail.withDraftBcc(message, bcc: ["one@x.org"])) == "one@x.org")
    }
}

@Suite("Webmail: folder listing")
struct WebmailListingTests {
    static func webmail(pageSize: Int) throws -> Webmail {
        let never = TCPConnector(host: "127.0.0.1", port: 9)
        let settings = WebmailSettings(pop3: never, smtp: never, pop3Description: "127.0.0.1:9", smtpDescription: "127.0.0.1:9",
                                       domain: "postern.i2p",
                                       dataDirectory: FileManager.default.temporaryDirectory.appendingPathComponent("webmail-listing-\(UUID().uuidString)"),
                                       pageSize: pageSize, sealCost: ScryptCost(log2N: 10, r: 8, p: 1))
        return try Webmail(settings: settings, logger: Logger(label: "test"))
    }

    /// Five rows whose keys each give a different order. Arrival breaks ties (the two "bob" rows).
    static let rows: [Webmail.Row] = [
        .init(peer: "Carol", subject: "delta", date: 300, size: 50, href: "/m/1", unread: false, arrival: 1),
        .init(peer: "alice", subject: "Echo", date: 100, size: 10, href: "/m/2", unread: true, arrival: 2),
        .init(peer: "bob", subject: "alpha", date: nil, size: 40, href: "/m/3", unread: false, arrival: 3),
        .init(peer: "Bob", subject: "charlie", date: 200, size: 30, href: "/m/4", unread: false, arrival: 4),
        .init(peer: "dave", subject: "Bravo", date: 400, size: 20, href: "/m/5", unread: false, arrival: 5),
    ]

    func list(_ query: String, pageSize: Int = 10, rows: [Webmail.Row] = rows) throws -> [String: Any] {
        try Self.webmail(pageSize: pageSize).listing(rows, query: URI("/inbox?\(query)").queryParameters, path: "/inbox", into: ["keep": "me"])
    }

    func hrefs(_ context: [String: Any]) throws -> [String] {
        let messages = try #require(context["messages"] as? [[String: Any]])
        return messages.map { $0["href"] as? String ?? "?" }
    }

    @Test(arguments: [
        ("", ["/m/5", "/m/1", "/m/4", "/m/2", "/m/3"]),
        ("sort=date&order=desc", ["/m/5", "/m/1", "/m/4", "/m/2", "/m/3"]),
        ("sort=date&order=asc", ["/m/3", "/m/2", "/m/4", "/m/1", "/m/5"]),
        ("sort=from&order=asc", ["/m/2", "/m/3", "/m/4", "/m/1", "/m/5"]),
        ("sort=from&order=desc", ["/m/5", "/m/1", "/m/4", "/m/3", "/m/2"]),
        ("sort=subject&order=asc", ["/m/3", "/m/5", "/m/4", "/m/1", "/m/2"]),
        ("sort=subject", ["/m/2", "/m/1", "/m/4", "/m/5", "/m/3"]),
        ("sort=size&order=asc", ["/m/2", "/m/5", "/m/4", "/m/3", "/m/1"]),
        ("sort=size&order=desc", ["/m/1", "/m/3", "/m/4", "/m/5", "/m/2"]),
        ("sort=nonsense&order=sideways", ["/m/5", "/m/1", "/m/4", "/m/2", "/m/3"]),
    ])
    func sorting(_ query: String, _ expected: [String]) throws {
        let context = try list(query)
        #expect(try hrefs(context) == expected)
        #expect(context["keep"] as? String == "me")
        #expect(context["hasMessages"] as? Bool == true)
        #expect(context["page"] as? Int == 1)
        #expect(context["pages"] as? Int == 1)
        #expect(context["previous"] == nil)
        #expect(context["next"] == nil)
    }

    @Test func sortLinksTurnTheOrderAround() throws {
        let byDate = try list("")
        #expect(byDate["sort"] as? String == "date")
        #expect(byDate["order"] as? String == "desc")
        #expect(byDate["sortDate"] as? String == "/inbox?sort=date&order=asc&page=1")
        #expect(byDate["sortFrom"] as? String == "/inbox?sort=from&order=desc&page=1")
        let bySizeAscending = try list("sort=size&order=asc")
        #expect(bySizeAscending["sortSize"] as? String == "/inbox?sort=size&order=desc&page=1")
        #expect(bySizeAscending["sortSubject"] as? String == "/inbox?sort=subject&order=desc&page=1")
    }

    @Test func rowsAsShown() throws {
        let context = try list("sort=date&order=asc")
        let messages = try #require(context["messages"] as? [[String: Any]])
        let undated = messages[0]
        #expect(undated["date"] as? String == "")
        #expect(undated["peer"] as? String == "bob")
        let alice = messages[1]
        #expect(alice["unread"] as? Bool == true)
        #expect(alice["date"] as? String == "1970-01-01 00:01")
        let empty = try list("", rows: [.init(peer: "", subject: "", date: 0, size: 0, href: "/m/0", unread: false, arrival: 0)])
        let row = try #require((empty["messages"] as? [[String: Any]])?.first)
        #expect(row["peer"] as? String == "(nobody)")
        #expect(row["subject"] as? String == "(no subject)")
    }

    @Test func paging() throws {
        // Size ascending: m2 m5 m4 m3 m1, two per page.
        let first = try list("sort=size&order=asc&page=1", pageSize: 2)
        #expect(try hrefs(first) == ["/m/2", "/m/5"])
        #expect(first["pages"] as? Int == 3)
        #expect(first["previous"] == nil)
        #expect(first["next"] as? String == "/inbox?sort=size&order=asc&page=2")

        let second = try list("sort=size&order=asc&page=2", pageSize: 2)
        #expect(try hrefs(second) == ["/m/4", "/m/3"])
        #expect(second["previous"] as? String == "/inbox?sort=size&order=asc&page=1")
        #expect(second["next"] as? String == "/inbox?sort=size&order=asc&page=3")

        let last = try list("sort=size&order=asc&page=3", pageSize: 2)
        #expect(try hrefs(last) == ["/m/1"])
        #expect(last["page"] as? Int == 3)
        #expect(last["next"] == nil)
        #expect(last["previous"] as? String == "/inbox?sort=size&order=asc&page=2")
    }

    @Test(arguments: [("page=0", 1), ("page=-3", 1), ("page=abc", 1), ("page=", 1), ("page=99", 3), ("page=3", 3), ("page=9223372036854775807", 3)])
    func pageIsClamped(_ query: String, _ page: Int) throws {
        let context = try list("sort=size&order=asc&" + query, pageSize: 2)
        #expect(context["page"] as? Int == page)
        #expect(try hrefs(context) == (page == 1 ? ["/m/2", "/m/5"] : ["/m/1"]))
    }

    @Test func emptyFolder() throws {
        let context = try list("page=5", pageSize: 2, rows: [])
        #expect(context["hasMessages"] as? Bool == false)
        #expect(context["page"] as? Int == 1)
        #expect(context["pages"] as? Int == 1)
        #expect(try hrefs(context).isEmpty)
        #expect(context["next"] == nil)
        #expect(context["previous"] == nil)
    }
}
