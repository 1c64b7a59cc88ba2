import MailCore
import NIOCore

/// A command from the client (RFC 5321 4.1.1), parsed from one line without its CRLF.
public enum SMTPCommand: Equatable, Sendable {
    case ehlo(String)
    case helo(String)
    case mail(reversePath: EmailAddress?, parameters: [MailParameter])
    case rcpt(forwardPath: EmailAddress, parameters: [(String, String?)])
    case data
    case bdat(size: Int, last: Bool)
    case rset
    case noop
    case quit
    case vrfy
    case help
    case expn
    case auth(mechanism: String, initialResponse: String?)
    case starttls

    public static func == (a: SMTPCommand, b: SMTPCommand) -> Bool {
        switch (a, b) {
        case let (.ehlo(x), .ehlo(y)), let (.helo(x), .helo(y)): return x == y
        case let (.mail(x1, x2), .mail(y1, y2)): return x1 == y1 && x2 == y2
        case let (.rcpt(x1, x2), .rcpt(y1, y2)):
            return x1 == y1 && x2.count == y2.count && zip(x2, y2).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case let (.bdat(x1, x2), .bdat(y1, y2)): return x1 == y1 && x2 == y2
        case let (.auth(x1, x2), .auth(y1, y2)): return x1 == y1 && x2 == y2
        case (.data, .data), (.rset, .rset), (.noop, .noop), (.quit, .quit), (.vrfy, .vrfy),
             (.help, .help), (.expn, .expn), (.starttls, .starttls):
            return true
        default: return false
        }
    }
}

/// ESMTP parameters of MAIL FROM that Postern understands.
public enum MailParameter: Equatable, Sendable {
    case size(Int)                 // RFC 1870
    case body(BodyType)            // RFC 6152
    case smtputf8                  // RFC 6531
    case auth(String)              // RFC 4954 5: accepted and ignored
}

public enum BodyType: String, Sendable {
    case sevenBit = "7BIT"
    case eightBitMIME = "8BITMIME"
}

/// Why a command line could not be parsed; each maps to one reply.
public enum SMTPCommandError: Error, Equatable, Sendable {
    case unrecognised
    case syntax(String)              // 501 5.5.4
    case unknownParameter(String)    // 555 5.5.4
    case nonASCIIAddress             // 553 5.6.7 (RFC 6531 3.7.4.1)
    case nul

    public var reply: SMTPReply {
        switch self {
        case .unrecognised: return .unrecognised
        case .syntax(let why): return SMTPReply(501, "5.5.4", "Syntax error: \(why)")
        case .unknownParameter(let name): return SMTPReply(555, "5.5.4", "Parameter \(name) not recognized")
        case .nonASCIIAddress: return SMTPReply(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter (RFC 6531)")
        case .nul: return SMTPReply(500, "5.5.2", "NUL character in command")
        }
    }
}

extension SMTPCommand {
    /// Parses one command line. Verbs are case-insensitive (RFC 5321 2.4).
    public static func parse(_ line: ByteBuffer) -> Result<SMTPCommand, SMTPCommandError> {
        let bytes = line.readableBytesView
        if bytes.contains(0) { return .failure(.nul) }
        let text = String(decoding: bytes, as: UTF8.self)
        let verbEnd = text.firstIndex(of: " ") ?? text.endIndex
        let verb = text[..<verbEnd].uppercased()
        let argument = verbEnd < text.endIndex ? String(text[text.index(after: verbEnd)...]) : ""
        let hasArgument = !argument.allSatisfy { $0 == " " }

        switch verb {
        case "EHLO", "HELO":
            let name = argument.trimmingCharacters(in: " ")
            guard !name.isEmpty, !name.contains(" ") || verb == "EHLO" else {
                return .failure(.syntax("\(verb) requires a domain or address literal"))
            }
            // Only the first word counts; the name is never stored or logged (SMTP-8).
            let first = String(name.split(separator: " ").first ?? "")
            return .success(verb == "EHLO" ? .ehlo(first) : .helo(first))
        case "MAIL":
            return parseMail(argument)
        case "RCPT":
            return parseRcpt(argument)
        case "DATA":
            return hasArgument ? .failure(.syntax("DATA takes no argument")) : .success(.data)
        case "BDAT":
            return parseBdat(argument)
        case "RSET":
            return hasArgument ? .failure(.syntax("RSET takes no argument")) : .success(.rset)
        case "NOOP":
            return .success(.noop)  // RFC 5321 4.1.1.9: a parameter may be given and is ignored
        case "QUIT":
            return hasArgument ? .failure(.syntax("QUIT takes no argument")) : .success(.quit)
        case "VRFY":
            return hasArgument ? .success(.vrfy) : .failure(.syntax("VRFY requires an argument"))
        case "EXPN":
            return .success(.expn)
        case "HELP":
            return .success(.help)
        case "STARTTLS":
            return .success(.starttls)
        case "AUTH":
            let parts = argument.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 1 || parts.count == 2 else { return .failure(.syntax("AUTH mechanism [initial-response]")) }
            return .success(.auth(mechanism: parts[0].uppercased(), initialResponse: parts.count == 2 ? String(parts[1]) : nil))
        default:
            return .failure(.unrecognised)
        }
    }

    private static func parseMail(_ argument: String) -> Result<SMTPCommand, SMTPCommandError> {
        guard argument.uppercased().hasPrefix("FROM:") else { return .failure(.syntax("expected MAIL FROM:<address>")) }
        let rest = String(argument.dropFirst(5)).trimmingLeadingSpaces()  // tolerate "FROM: <a>"
        switch parsePath(rest, allowNull: true) {
        case .failure(let error): return .failure(error)
        case .success(let (address, paramText)):
            var parameters: [MailParameter] = []
            var utf8 = false
            for (key, value) in splitParameters(paramText) {
                switch key {
                case "SIZE":
                    guard let value, value.count <= 18, let size = Int(value), size >= 0 else { return .failure(.syntax("SIZE=<number>")) }
                    parameters.append(.size(size))
                case "BODY":
                    guard let value, let type = BodyType(rawValue: value.uppercased()) else { return .failure(.syntax("BODY=7BIT or BODY=8BITMIME")) }
                    parameters.append(.body(type))
                case "SMTPUTF8":
                    guard value == nil else { return .failure(.syntax("SMTPUTF8 takes no value")) }
                    parameters.append(.smtputf8)
                    utf8 = true
                case "AUTH":
                    parameters.append(.auth(value ?? ""))
                default:
                    return .failure(.unknownParameter(key))
                }
            }
            if let address, !utf8, address.description.utf8.contains(where: { $0 >= 0x80 }) { return .failure(.nonASCIIAddress) }
            return .success(.mail(reversePath: address, parameters: parameters))
        }
    }

    private static func parseRcpt(_ argument: String) -> Result<SMTPCommand, SMTPCommandError> {
        guard argument.uppercased().hasPrefix("TO:") else { return .failure(.syntax("expected RCPT TO:<address>")) }
        let rest = String(argument.dropFirst(3)).trimmingLeadingSpaces()
        switch parsePath(rest, allowNull: false) {
        case .failure(let error): return .failure(error)
        case .success(let (address, paramText)):
            guard let address else { return .failure(.syntax("empty recipient")) }
            let parameters = splitParameters(paramText)
            // No DSN extension is announced, so no RCPT parameter is known (RFC 5321 4.1.1.3).
            if let (key, _) = parameters.first { return .failure(.unknownParameter(key)) }
            return .success(.rcpt(forwardPath: address, parameters: parameters))
        }
    }

    private static func parseBdat(_ argument: String) -> Result<SMTPCommand, SMTPCommandError> {
        let parts = argument.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 1 || (parts.count == 2 && parts[1].uppercased() == "LAST"),
              parts[0].count <= 12, parts[0].allSatisfy({ $0.isASCII && $0.isNumber }), let size = Int(parts[0])
        else { return .failure(.syntax("BDAT <size> [LAST] (RFC 3030)")) }
        return .success(.bdat(size: size, last: parts.count == 2))
    }

    /// Reads `<path>` (RFC 5321 4.1.2 Path, with an optional source route that is ignored) and
    /// returns the address (nil for `<>`) and the parameter text after it.
    private static func parsePath(_ text: String, allowNull: Bool) -> Result<(EmailAddress?, String), SMTPCommandError> {
        guard text.hasPrefix("<"), let close = text.firstIndex(of: ">") else {
            return .failure(.syntax("address must be enclosed in <>"))
        }
        var inner = String(text[text.index(after: text.startIndex)..<close])
        let after = String(text[text.index(after: close)...])
        guard after.isEmpty || after.hasPrefix(" ") else { return .failure(.syntax("junk after address")) }
        if inner.isEmpty {
            return allowNull ? .success((nil, after)) : .failure(.syntax("empty address"))
        }
        // RFC 5321 4.1.2 A-d-l: "@one,@two:user@domain" — the route must be accepted and ignored (C.)
        if inner.hasPrefix("@"), let colon = inner.firstIndex(of: ":") {
            inner = String(inner[inner.index(after: colon)...])
        }
        guard let address = EmailAddress(inner, allowUTF8: true) else {
            return .failure(.syntax("invalid address"))
        }
        return .success((address, after))
    }

    private static func splitParameters(_ text: String) -> [(String, String?)] {
        text.split(separator: " ", omittingEmptySubsequences: true).map { part in
            if let eq = part.firstIndex(of: "=") {
                return (part[..<eq].uppercased(), String(part[part.index(after: eq)...]))
            }
            return (part.uppercased(), nil)
        }
    }
}

extension String {
    func trimmingCharacters(in character: Character) -> String {
        var s = Substring(self)
        while s.first == character { s = s.dropFirst() }
        while s.last == character { s = s.dropLast() }
        return String(s)
    }

    func trimmingLeadingSpaces() -> String {
        String(drop { $0 == " " })
    }
}
