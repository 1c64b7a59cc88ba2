import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MailCore
import NIOCore
import Privacy
import SMTP

/// A webmail session: the user's mailbox (credentials in memory only), or nothing before login.
/// `pendingLogin` holds a login whose local folders need the old password (after a change).
struct WebmailVisitor: Sendable {
    var mailbox: Mailbox?
    var pendingLogin: PendingLogin?
}

struct PendingLogin: Sendable {
    var user: String
    var address: String
    var password: String
}

/// Which message a page is about: one on the server (by POP3 UID) or one in a local folder.
enum MessageRef: Sendable, Equatable {
    case inbox(String)
    case local(String)

    init?(_ text: String?) {
        guard let text, text.count <= 200 else { return nil }
        if text.hasPrefix("i:"), text.count > 2 { self = .inbox(String(text.dropFirst(2))) }
        else if text.hasPrefix("l:"), text.count > 2 { self = .local(String(text.dropFirst(2))) }
        else { return nil }
    }

    var text: String {
        switch self {
        case .inbox(let uid): return "i:" + uid
        case .local(let id): return "l:" + id
        }
    }

    /// For a query string (RFC 3986 3.4: only unreserved characters pass unencoded).
    var query: String { Self.encode(text) }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")) ?? ""
    }
}

/// `postern webmail` (WEB-2): a trusted mail client in the browser, on the user's own machine.
/// It reads over POP3 and sends over SMTP with AUTH through the user's tunnels; Sent, Drafts and
/// Trash live in its own data folder, sealed with a key from the user's password.
public final class Webmail: Sendable {
    static let cookie = "postern_webmail"
    static let formLimit = 64 * 1024

    let settings: WebmailSettings
    let logger: Logger
    let sessions: WebSessionStore<WebmailVisitor>
    let pages: PageRenderer
    let sanitiser = HTMLSanitiser()

    public init(settings: WebmailSettings, logger: Logger, now: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }) throws {
        self.settings = settings
        self.logger = logger
        self.sessions = WebSessionStore(idleTimeout: settings.sessionIdle, capacity: 1000, now: now)
        self.pages = try PageRenderer(title: "Postern webmail", templates: WebmailTemplates.all)
    }

    public func application(host: String, port: Int, onRunning: @escaping @Sendable (SocketAddress?) async -> Void) -> Application<RouterResponder<BasicRequestContext>> {
        Application(router: router(), server: .postern(), configuration: .init(address: .hostname(host, port: port), serverName: nil),
                    onServerRunning: { channel in await onRunning(channel.localAddress) }, logger: WebServer.frameworkLogger(logger))
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ProblemPageMiddleware(pages: pages, logger: logger))
        router.get("/static/style.css") { _, _ in SharedTemplates.styleSheet.response() }
        router.get("/") { [self] request, _ in
            signedIn(request) != nil ? Response.seeOther("/inbox") : Response.seeOther("/login")
        }
        router.get("/login") { [self] request, _ in
            let (session, cookie) = visitorSession(request)
            if session.payload.mailbox != nil { return Response.seeOther("/inbox") }
            return pages.page("wm-login", loginContext(session), headers: cookie)
        }
        router.post("/login") { [self] request, _ in try await login(request) }
        router.post("/reseal") { [self] request, _ in try await reseal(request, skip: false) }
        router.post("/reseal/skip") { [self] request, _ in try await reseal(request, skip: true) }
        router.post("/logout") { [self] request, _ in
            let form = try await request.form(upTo: Self.formLimit)
            if let session = sessions.find(request.cookies[Self.cookie]?.value) {
                guard session.acceptsCSRF(form["csrf"]) else { return staleForm() }
                sessions.remove(session.id)
            }
            return Response.seeOther("/login", headers: SessionCookie.clear(Self.cookie))
        }
        router.get("/inbox") { [self] request, _ in try await inbox(request) }
        router.get("/folder/:name") { [self] request, context in try await localFolder(request, name: context.parameters.get("name") ?? "") }
        router.get("/message") { [self] request, _ in try await showMessage(request) }
        router.get("/message/html") { [self] request, _ in try await messageHTML(request) }
        router.get("/attachment") { [self] request, _ in try await attachment(request) }
        router.post("/delete") { [self] request, _ in try await delete(request) }
        router.get("/compose") { [self] request, _ in try await composeForm(request) }
        router.post("/compose") { [self] request, _ in try await compose(request) }
        return router
    }

    // MARK: sessions

    func signedIn(_ request: Request) -> (WebSession<WebmailVisitor>, Mailbox)? {
        guard let session = sessions.find(request.cookies[Self.cookie]?.value), let mailbox = session.payload.mailbox else { return nil }
        return (session, mailbox)
    }

    func visitorSession(_ request: Request) -> (WebSession<WebmailVisitor>, HTTPFields) {
        if let session = sessions.find(request.cookies[Self.cookie]?.value) { return (session, [:]) }
        let session = sessions.create(WebmailVisitor())
        return (session, SessionCookie.set(Self.cookie, session.id))
    }

    func base(_ session: WebSession<WebmailVisitor>, title: String, address: String?, current: String = "") -> [String: Any] {
        var context: [String: Any] = ["csrf": session.csrfToken, "pageTitle": title, "domain": settings.domain]
        if let notice = sessions.takeNotice(session.id) { context["notice"] = notice }
        if let address {
            context["account"] = address
            context["nav"] = [("/inbox", "Inbox"), ("/folder/sent", "Sent"), ("/folder/drafts", "Drafts"), ("/folder/trash", "Trash"), ("/compose", "Write")]
                .map { ["href": $0.0, "label": $0.1, "current": $0.1 == current] as [String: Any] }
        }
        return context
    }

    func loginContext(_ session: WebSession<WebmailVisitor>) -> [String: Any] {
        var context = base(session, title: "Webmail — log in", address: nil)
        context["pop3"] = settings.pop3Description
        context["smtp"] = settings.smtpDescription
        return context
    }

    func staleForm() -> Response {
        pages.problem("This form has expired or did not come from this page. Reload the page and try again.", status: .forbidden, back: "/")
    }

    func requireLogin() -> Response { Response.seeOther("/login") }

    // MARK: login

    func login(_ request: Request) async throws -> Response {
        let form = try await request.form(upTo: Self.formLimit)
        guard let visitor = sessions.find(request.cookies[Self.cookie]?.value), visitor.acceptsCSRF(form["csrf"]) else { return staleForm() }
        let typed = try form.required("user", label: "Account name", maximum: 100).trimmingCharacters(in: .whitespaces).lowercased()
        let password = try form.required("password", label: "Password")
        // The core's POP3 and SMTP take the bare account name; the address is name@domain.
        let user = typed.hasSuffix("@" + settings.domain) ? String(typed.dropLast(settings.domain.count + 1)) : typed
        let address = user.contains("@") ? user : "\(user)@\(settings.domain)"
        do {
            try await Mailbox.verify(user: user, password: password, settings: settings)
        } catch let problem as MailboxProblem {
            var context = loginContext(visitor)
            context["user"] = typed
            context["error"] = problem.description
            return pages.page("wm-login", context, status: .unauthorized)
        }
        return try await finishLogin(visitor: visitor, login: PendingLogin(user: user, address: address, password: password))
    }

    /// Opens the sealed folders and makes the logged-in session; a folder sealed with another
    /// password asks for the old one first.
    func finishLogin(visitor: WebSession<WebmailVisitor>, login: PendingLogin, folders opened: SealedFolders? = nil, skipFolders: Bool = false) async throws -> Response {
        var folders = opened
        if folders == nil && !skipFolders {
            do {
                folders = try await SealedFolders.open(root: settings.dataDirectory, account: login.user, password: login.password, parameters: settings.sealCost)
            } catch SealedFoldersError.wrongPassword {
                sessions.update(visitor.id) { $0.payload.pendingLogin = login }
                return pages.page("wm-reseal", base(visitor, title: "Local folders", address: nil))
            } catch {
                logger.error("webmail cannot open its local folders", metadata: ["error": "\(type(of: error))"])
                return pages.problem("The local folders cannot be opened: \(error). Check the webmail's data folder.", status: .internalServerError, back: "/login")
            }
        }
        let mailbox = Mailbox(user: login.user, address: login.address, password: login.password, folders: folders, settings: settings)
        sessions.remove(visitor.id)
        let session = sessions.create(WebmailVisitor(mailbox: mailbox))
        if folders == nil {
            sessions.update(session.id) { $0.notice = "Your old local folders stay sealed; Sent, Drafts and Trash are not kept in this session." }
        }
        return Response.seeOther("/inbox?refresh=1", headers: SessionCookie.set(Self.cookie, session.id))
    }

    func reseal(_ request: Request, skip: Bool) async throws -> Response {
        let form = try await request.form(upTo: Self.formLimit)
        guard let visitor = sessions.find(request.cookies[Self.cookie]?.value), visitor.acceptsCSRF(form["csrf"]),
              let login = visitor.payload.pendingLogin else { return staleForm() }
        if skip { return try await finishLogin(visitor: visitor, login: login, skipFolders: true) }
        let old = try form.required("old", label: "Old password")
        do {
            try await SealedFolders.reseal(root: settings.dataDirectory, account: login.user, oldPassword: old, newPassword: login.password,
                                           parameters: settings.sealCost)
        } catch SealedFoldersError.wrongPassword {
            var context = base(visitor, title: "Local folders", address: nil)
            context["error"] = "That is not the password the folders were sealed with."
            return pages.page("wm-reseal", context, status: .forbidden)
        }
        return try await finishLogin(visitor: visitor, login: login)
    }

    // MARK: folders

    enum SortKey: String { case date, from, subject, size }

    struct Row {
        var peer: String
        var subject: String
        var date: Int64?
        var size: Int
        var href: String
        var unread: Bool
        var arrival: Int
    }

    func inbox(_ request: Request) async throws -> Response {
        guard let (session, mailbox) = signedIn(request) else { return requireLogin() }
        let query = request.uri.queryParameters
        let checkedBefore = await mailbox.lastChecked
        if query["refresh"] != nil || checkedBefore == nil {
            do { try await mailbox.refresh() } catch let problem as MailboxProblem {
                sessions.update(session.id) { $0.notice = nil }
                var context = base(session, title: "Inbox", address: mailbox.address, current: "Inbox")
                context["error"] = problem.description
                return pages.page("wm-folder", context.merging(["folderTitle": "Inbox", "isInbox": true, "hasMessages": false, "countText": ""]) { $1 }, status: .badGateway)
            }
        }
        let rows = await mailbox.inbox.values.map { entry in
            Row(peer: entry.from, subject: entry.subject, date: entry.date, size: entry.size,
                href: "/message?ref=" + MessageRef.inbox(entry.uid).query, unread: !entry.seen, arrival: entry.arrival)
        }
        var context = base(session, title: "Inbox", address: mailbox.address, current: "Inbox")
        context["folderTitle"] = "Inbox"
        context["isInbox"] = true
        context["peerLabel"] = "From"
        if let checked = await mailbox.lastChecked {
            context["countText"] = "\(rows.count) message\(rows.count == 1 ? "" : "s") · checked \(RFC5322Date.format(secondsSince1970: Int64(checked.timeIntervalSince1970), roundedToMinute: false))"
        }
        return pages.page("wm-folder", listing(rows, query: query, path: "/inbox", into: context))
    }

    func localFolder(_ request: Request, name: String) async throws -> Response {
        guard let (session, mailbox) = signedIn(request) else { return requireLogin() }
        guard let folder = LocalFolder(rawValue: name) else { throw HTTPError(.notFound) }
        let title = folder.rawValue.capitalized
        var context = base(session, title: title, address: mailbox.address, current: title)
        context["folderTitle"] = title
        context["peerLabel"] = folder == .trash ? "From" : "To"
        var rows: [Row] = []
        if let folders = mailbox.folders {
            let summaries = try await folders.list(folder)
            rows = summaries.enumerated().map { index, summary in
                Row(peer: folder == .trash ? summary.from : summary.to, subject: summary.subject, date: summary.date ?? summary.savedAt,
                    size: summary.size, href: "/message?ref=" + MessageRef.local(summary.id).query, unread: false, arrival: summaries.count - index)
            }
            let damaged = await folders.damagedFiles
            if !damaged.isEmpty { context["error"] = "\(damaged.count) file(s) in the local folders cannot be read (damaged or sealed with another key)." }
        } else {
            context["error"] = "Local folders are not open in this session."
        }
        context["countText"] = "\(rows.count) message\(rows.count == 1 ? "" : "s"), sealed on this computer"
        return pages.page("wm-folder", listing(rows, query: request.uri.queryParameters, path: "/folder/\(folder.rawValue)", into: context))
    }

    /// Sorting (by date, sender, subject, size; either order) and paging of a folder's rows.
    func listing(_ rows: [Row], query: Parameters, path: String, into context: [String: Any]) -> [String: Any] {
        var context = context
        let sort = SortKey(rawValue: String(query["sort"] ?? "date")) ?? .date
        let ascending = query["order"] == "asc"
        let sorted = rows.sorted { a, b in
            let before: Bool
            switch sort {
            case .date: before = (a.date ?? 0, a.arrival) < (b.date ?? 0, b.arrival)
            case .from: before = (a.peer.lowercased(), a.arrival) < (b.peer.lowercased(), b.arrival)
            case .subject: before = (a.subject.lowercased(), a.arrival) < (b.subject.lowercased(), b.arrival)
            case .size: before = (a.size, a.arrival) < (b.size, b.arrival)
            }
            return ascending ? before : !before
        }
        let pageSize = settings.pageSize
        let pages = max(1, (sorted.count + pageSize - 1) / pageSize)
        let page = min(max(1, Int(query["page"] ?? "1") ?? 1), pages)
        let slice = sorted.dropFirst((page - 1) * pageSize).prefix(pageSize)
        let order = ascending ? "asc" : "desc"
        func link(sort key: SortKey, order: String, page: Int) -> String { "\(path)?sort=\(key.rawValue)&order=\(order)&page=\(page)" }
        // A header link sorts by its column; clicked again, it turns the order around.
        func header(_ key: SortKey) -> String { link(sort: key, order: key == sort && !ascending ? "asc" : "desc", page: 1) }
        context["sort"] = sort.rawValue
        context["order"] = order
        context["sortFrom"] = header(.from)
        context["sortSubject"] = header(.subject)
        context["sortDate"] = header(.date)
        context["sortSize"] = header(.size)
        context["hasMessages"] = !sorted.isEmpty
        context["page"] = page
        context["pages"] = pages
        if page > 1 { context["previous"] = link(sort: sort, order: order, page: page - 1) }
        if page < pages { context["next"] = link(sort: sort, order: order, page: page + 1) }
        context["messages"] = slice.map { row in
            ["peer": row.peer.isEmpty ? "(nobody)" : row.peer, "subject": row.subject.isEmpty ? "(no subject)" : row.subject,
             "date": row.date.map { Self.shortDate($0) } ?? "", "size": ByteSize.describe(row.size), "href": row.href, "unread": row.unread] as [String: Any]
        }
        return context
    }

    static func shortDate(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let (year, month, day) = RFC5322Date.civil(fromDays: days)
        let minutes = (seconds - days * 86400) / 60
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(year)-\(two(month))-\(two(day)) \(two(minutes / 60)):\(two(minutes % 60))"
    }

    // MARK: one message

    /// The message's bytes and, for a local one, its folder.
    func load(_ ref: MessageRef, from mailbox: Mailbox) async throws -> ([UInt8], LocalFolder?) {
        switch ref {
        case .inbox(let uid):
            return (try await mailbox.message(uid), nil)
        case .local(let id):
            guard let folders = mailbox.folders else { throw MailboxProblem(description: "Local folders are not open in this session.") }
            do {
                let summary = try await folders.summary(id)
                return (try await folders.read(id), summary.folder)
            } catch SealedFoldersError.notFound {
                throw HTTPError(.notFound, message: "There is no such message.")
            }
        }
    }

    func showMessage(_ request: Request) async throws -> Response {
        guard let (session, mailbox) = signedIn(request) else { return requireLogin() }
        guard let ref = MessageRef(request.uri.queryParameters["ref"].map(String.init)) else { throw HTTPError(.notFound) }
        let bytes: [UInt8]
        let folder: LocalFolder?
        do { (bytes, folder) = try await load(ref, from: mailbox) } catch let problem as MailboxProblem {
            return pages.problem(problem.description, status: .badGateway, back: "/inbox")
        }
        let view = MessageView(parsing: bytes)
        let backPath = folder.map { "/folder/\($0.rawValue)" } ?? "/inbox"
        var context = base(session, title: view.subject.isEmpty ? "(no subject)" : view.subject, address: mailbox.address)
        context["ref"] = ref.query
        context["refText"] = ref.text
        context["subject"] = view.subject.isEmpty ? "(no subject)" : view.subject
        context["from"] = view.from
        if !view.to.isEmpty { context["to"] = view.to.joined(separator: ", ") }
        if !view.cc.isEmpty { context["cc"] = view.cc.joined(separator: ", ") }
        context["date"] = view.date.map { RFC5322Date.format(secondsSince1970: $0, roundedToMinute: false) } ?? "(no date)"
        context["problems"] = view.problems
        context["back"] = backPath
        context["backLabel"] = folder.map { $0.rawValue.capitalized } ?? "Inbox"
        context["canReply"] = folder != .drafts
        context["isDraft"] = folder == .drafts
        context["deleteLabel"] = folder == .trash || folder == .drafts ? "Delete for good" : "Delete"
        if let html = view.htmlBody {
            let result = sanitiser.sanitise(html)
            context["hasHTML"] = true
            context["htmlHref"] = "/message/html?ref=" + ref.query
            if result.removedRemoteReferences > 0 {
                context["blocked"] = "\(result.removedRemoteReferences) remote reference(s) (images, style sheets, frames) were blocked: the sender cannot see that you read this."
            }
        }
        if let text = view.textBody { context["text"] = text } else if view.htmlBody == nil { context["text"] = "" }
        context["hasAttachments"] = !view.attachments.isEmpty
        context["attachments"] = view.attachments.map { attachment in
            ["href": "/attachment?ref=\(ref.query)&n=\(attachment.index)", "filename": attachment.filename,
             "contentType": attachment.contentType, "size": ByteSize.describe(attachment.size)] as [String: Any]
        }
        return pages.page("wm-message", context)
    }

    /// The mail's HTML, sanitised, for the sandboxed frame: its own CSP forbids every fetch but
    /// data: images and runs no script, whatever got past the sanitiser.
    func messageHTML(_ request: Request) async throws -> Response {
        guard let (_, mailbox) = signedIn(request) else { return requireLogin() }
        guard let ref = MessageRef(request.uri.queryParameters["ref"].map(String.init)) else { throw HTTPError(.notFound) }
        let (bytes, _) = try await load(ref, from: mailbox)
        let html = MessageView(parsing: bytes).htmlBody.map { sanitiser.sanitise($0).html } ?? ""
        var headers = SecurityPolicy.sandboxedMail.headers
        headers[.contentType] = "text/html; charset=utf-8"
        let document = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"referrer\" content=\"no-referrer\"></head><body>\(html)</body></html>"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: document)))
    }

    /// An attachment as a download, never shown as a page of this origin (its type is not
    /// trusted: application/octet-stream, a sandbox CSP, nosniff).
    func attachment(_ request: Request) async throws -> Response {
        guard let (_, mailbox) = signedIn(request) else { return requireLogin() }
        let query = request.uri.queryParameters
        guard let ref = MessageRef(query["ref"].map(String.init)), let index = query["n"].flatMap({ Int(String($0)) }) else { throw HTTPError(.notFound) }
        let (bytes, _) = try await load(ref, from: mailbox)
        let view = MessageView(parsing: bytes)
        guard let attachment = view.attachments.first(where: { $0.index == index }), let data = view.attachmentData(index) else {
            throw HTTPError(.notFound, message: "There is no such attachment.")
        }
        var headers = SecurityPolicy.download.headers
        headers[.contentType] = "application/octet-stream"
        headers[.contentDisposition] = Self.contentDisposition(attachment.filename)
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// RFC 6266 4.3: an ASCII fallback plus `filename*` in UTF-8 (RFC 8187).
    static func contentDisposition(_ filename: String) -> String {
        let fallback = String(filename.unicodeScalars.map { (0x20..<0x7F).contains($0.value) && $0 != "\"" && $0 != "\\" ? Character($0) : "_" })
        return "attachment; filename=\"\(fallback)\"; filename*=UTF-8''\(MessageRef.encode(filename))"
    }

    func delete(_ request: Request) async throws -> Response {
        guard let (session, mailbox) = signedIn(request) else { return requireLogin() }
        let form = try await request.form(upTo: Self.formLimit)
        guard session.acceptsCSRF(form["csrf"]) else { return staleForm() }
        guard let ref = MessageRef(form["ref"]) else { throw FormError("Which message? The form names none.") }
        switch ref {
        case .inbox(let uid):
            do { try await mailbox.moveToTrash(uid, now: Int64(Date().timeIntervalSince1970)) } catch let problem as MailboxProblem {
                return pages.problem(problem.description, status: .badGateway, back: "/inbox")
            }
            sessions.update(session.id) { $0.notice = mailbox.folders == nil ? "Message deleted." : "Message moved to Trash." }
            return Response.seeOther("/inbox")
        case .local(let id):
            guard let folders = mailbox.folders else { return pages.problem("Local folders are not open in this session.", status: .conflict) }
            let summary = try await folders.summary(id)
            if summary.folder == .trash || summary.folder == .drafts {
                try await folders.delete(id)
                sessions.update(session.id) { $0.notice = "Message deleted for good." }
            } else {
                try await folders.move(id, to: .trash)
                sessions.update(session.id) { $0.notice = "Message moved to Trash." }
            }
            return Response.seeOther("/folder/\(summary.folder.rawValue)")
        }
    }
}
