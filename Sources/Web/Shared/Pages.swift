import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Mustache
import NIOCore

/// Renders server-side pages from mustache templates (`{{x}}` is HTML-escaped by the engine; the
/// one unescaped slot is `{{{body}}}`, the already-rendered page inside the layout).
public struct PageRenderer: Sendable {
    private let library: MustacheLibrary
    public let title: String

    public init(title: String, templates: [String: String]) throws {
        var library = MustacheLibrary()
        for (name, text) in templates.merging(SharedTemplates.all, uniquingKeysWith: { own, _ in own }) {
            try library.register(text, named: name)
        }
        self.library = library
        self.title = title
    }

    /// The page `template` with `context`, inside the layout.
    public func page(_ template: String, _ context: [String: Any], status: HTTPResponse.Status = .ok,
                     policy: SecurityPolicy = .pages, headers extra: HTTPFields = [:]) -> Response {
        let body = library.render(context, withTemplate: template) ?? "The page \(template) could not be rendered."
        var layout = context
        layout["body"] = body
        layout["appTitle"] = title
        if layout["pageTitle"] == nil { layout["pageTitle"] = title }
        let html = library.render(layout, withTemplate: "layout") ?? body
        var headers = policy.headers
        headers[.contentType] = "text/html; charset=utf-8"
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A page that says what went wrong and where to go from here; never a stack trace.
    public func problem(_ message: String, status: HTTPResponse.Status, back: String = "/") -> Response {
        page("problem", ["pageTitle": "\(status.code) \(status.reasonPhrase)", "message": message, "back": back], status: status)
    }
}

/// The response headers that make a page safe to show (WEB section 11): a Content-Security-Policy
/// with no source outside the app's own origin (no inline script, no third party, nothing
/// framing the page), no referrer, no caching of pages that show a mailbox.
public struct SecurityPolicy: Sendable {
    public var contentSecurityPolicy: String

    /// Account pages and the webmail's own pages. `frame-src 'self'` lets the webmail show a mail's
    /// HTML in its sandboxed frame; the frame's own response carries `sandboxedMail`.
    public static let pages = SecurityPolicy(contentSecurityPolicy:
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-src 'self'; "
        + "frame-ancestors 'none'; base-uri 'none'; connect-src 'none'")

    /// A mail's sanitised HTML: no script at all, its own opaque origin (CSP sandbox), nothing
    /// loaded from anywhere but inline styles and data: images — so even markup the sanitiser
    /// missed cannot fetch a tracking pixel (W3C CSP3 section 6.3.2 sandbox; 6.1 fetch directives).
    public static let sandboxedMail = SecurityPolicy(contentSecurityPolicy:
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src 'none'; form-action 'none'; "
        + "frame-ancestors 'self'; base-uri 'none'; sandbox")

    /// Attachments: never rendered as a page of the app's origin.
    public static let download = SecurityPolicy(contentSecurityPolicy: "default-src 'none'; sandbox; frame-ancestors 'none'")

    public var headers: HTTPFields {
        var fields = HTTPFields()
        fields[HTTPField.Name("Content-Security-Policy")!] = contentSecurityPolicy
        fields[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        fields[HTTPField.Name("X-Frame-Options")!] = contentSecurityPolicy.contains("frame-ancestors 'self'") ? "SAMEORIGIN" : "DENY"
        fields[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
        fields[HTTPField.Name("Cross-Origin-Opener-Policy")!] = "same-origin"
        fields[HTTPField.Name("Cross-Origin-Resource-Policy")!] = "same-origin"
        fields[HTTPField.Name("Permissions-Policy")!] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
        fields[.cacheControl] = "no-store"
        return fields
    }
}

/// Turns every error a handler throws into a page that says what happened — an oversized or
/// malformed request gets its own status, anything else a plain 500 — and logs only the kind of
/// error, never what a user typed.
public struct ProblemPageMiddleware<Context: RequestContext>: RouterMiddleware {
    let pages: PageRenderer
    let logger: Logger

    public init(pages: PageRenderer, logger: Logger) {
        self.pages = pages
        self.logger = logger
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            if response.headers[HTTPField.Name("Content-Security-Policy")!] == nil {
                // Responses made by the framework itself (404s, redirects) get the headers too.
                response.headers.append(contentsOf: SecurityPolicy.pages.headers)
            }
            return response
        } catch let error as any PageProblem {
            return pages.problem(error.description, status: error.status)
        } catch is NIOTooManyBytesError {
            return pages.problem("What was sent is too large.", status: .contentTooLarge)
        } catch let error as HTTPError {
            switch error.status {
            case .notFound: return pages.problem("There is no such page.", status: .notFound)
            case .contentTooLarge: return pages.problem("What was sent is too large.", status: .contentTooLarge)
            case .methodNotAllowed: return pages.problem("This page does not take that request.", status: .methodNotAllowed)
            default: return pages.problem(error.body ?? "The request could not be handled.", status: error.status)
            }
        } catch {
            logger.error("web request failed", metadata: ["error": "\(type(of: error))"])
            return pages.problem("Something went wrong on the server. Nothing was changed; please try again.", status: .internalServerError)
        }
    }
}

/// An error whose text is meant for the user, with the status it answers.
public protocol PageProblem: Error, CustomStringConvertible {
    var status: HTTPResponse.Status { get }
}

/// Request helpers shared by the apps.
extension Request {
    /// The body as bytes, at most `limit`.
    func bytes(upTo limit: Int) async throws -> [UInt8] {
        let buffer = try await body.collect(upTo: limit)
        return Array(buffer.readableBytesView)
    }

    /// The submitted form, URL-encoded or multipart, at most `limit` bytes.
    func form(upTo limit: Int) async throws -> SubmittedForm {
        let type = headers[.contentType] ?? ""
        let body = try await bytes(upTo: limit)
        if type.lowercased().hasPrefix("multipart/form-data") { return try SubmittedForm.multipart(body, contentType: type) }
        return try SubmittedForm.urlEncoded(body)
    }
}

extension Response {
    /// 303 See Other: after a form, the browser fetches the next page with GET (RFC 9110 15.4.4).
    static func seeOther(_ location: String, headers extra: HTTPFields = [:]) -> Response {
        var headers = SecurityPolicy.pages.headers
        headers[.location] = location
        headers.append(contentsOf: extra)
        return Response(status: .seeOther, headers: headers)
    }
}

/// The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's page
/// sends it), path /, no expiry (ends with the browser) — not Secure: on I2P the page is plain
/// HTTP inside an encrypted tunnel.
enum SessionCookie {
    static func set(_ name: String, _ value: String) -> HTTPFields {
        [.setCookie: "\(name)=\(value); Path=/; HttpOnly; SameSite=Strict"]
    }

    static func clear(_ name: String) -> HTTPFields {
        [.setCookie: "\(name)=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"]
    }
}

/// Static files served from memory (the style sheet, the proof-of-work script).
struct StaticAsset: Sendable {
    var contentType: String
    var body: String

    func response() -> Response {
        var headers = SecurityPolicy.pages.headers
        headers[.contentType] = contentType
        headers[.cacheControl] = "max-age=3600"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
