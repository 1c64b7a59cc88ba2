import MailCore

/// The Internet-inbound policy (PRIV-5), applied by the gateway to mail from the Internet before
/// it is forwarded to the core. Pure.
///
/// - To and Cc addresses at the Internet domain are rewritten to the internal domain;
/// - read-receipt requests (Disposition-Notification-To, Return-Receipt-To) are removed: a receipt
///   would tell the sender when the reader opened the mail;
/// - `Authentication-Results` fields that claim to come from this gateway are removed (RFC 8601
///   5: they are forgeries) and the gateway's own verdict is put on top;
/// - the body is not touched here (HTML sanitising is a separate policy, SCAN-2).
public struct InboundSanitiser: Sendable {
    public var internetDomain: String
    public var internalDomain: String
    /// The authserv-id of this gateway's Authentication-Results (RFC 8601 2.5).
    public var authservID: String

    public static let droppedFields: Set<String> = ["disposition-notification-to", "return-receipt-to"]

    public init(internetDomain: String, internalDomain: String, authservID: String? = nil) {
        self.internetDomain = internetDomain
        self.internalDomain = internalDomain
        self.authservID = authservID ?? internetDomain
    }

    /// `verdict` is the result part of Authentication-Results, e.g. `spf=pass smtp.mailfrom=example.com`;
    /// `trace`, a whole Received field (without its CRLF) the gateway adds below it.
    public func sanitise(_ message: [UInt8], verdict: String, trace: String? = nil) -> [UInt8] {
        let header = HeaderSection.parse(message)
        var out: [UInt8] = Array("Authentication-Results: \(authservID); \(verdict)\r\n".utf8)
        if let trace { out += Array((trace + "\r\n").utf8) }
        out.reserveCapacity(message.count + out.count)
        for field in header.fields {
            let name = field.name.lowercased()
            if Self.droppedFields.contains(name) { continue }
            if name == "authentication-results", let claimed = Self.authservID(of: field.value),
               Self.sameID(claimed, authservID) {
                continue
            }
            if name == "to" || name == "cc" {
                out.append(contentsOf: Array("\(field.name): ".utf8))
                out.append(contentsOf: AddressRewriter.rewrite(MessageSanitiser.rawValue(field), from: internetDomain, to: internalDomain))
                out.append(contentsOf: [13, 10])
                continue
            }
            out.append(contentsOf: field.raw)
            out.append(contentsOf: [13, 10])
        }
        out.append(contentsOf: [13, 10])
        if header.bodyOffset < message.count { out.append(contentsOf: message[header.bodyOffset...]) }
        return out
    }

    /// Case and a trailing root dot do not make another id.
    static func sameID(_ a: String, _ b: String) -> Bool {
        func normal(_ id: String) -> String { (id.hasSuffix(".") ? String(id.dropLast()) : id).lowercased() }
        return normal(a) == normal(b)
    }

    /// The authserv-id an Authentication-Results value begins with (RFC 8601 2.2): a value
    /// (token or quoted string) after optional folding whitespace and comments, so that
    /// `i2pmail.org\t;`, `(x) i2pmail.org;` and `"i2pmail.org";` are all recognised.
    static func authservID(of value: String) -> String? {
        let bytes = Array(value.utf8)
        var index = 0
        func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A }
        // CFWS: whitespace and (nested, escaped) comments, bounded by the value's length.
        while index < bytes.count {
            if isSpace(bytes[index]) {
                index += 1
            } else if bytes[index] == UInt8(ascii: "(") {
                var depth = 0
                while index < bytes.count {
                    let byte = bytes[index]
                    index += 1
                    if byte == UInt8(ascii: "\\") { index += 1; continue }
                    if byte == UInt8(ascii: "(") { depth += 1 }
                    if byte == UInt8(ascii: ")") { depth -= 1; if depth == 0 { break } }
                }
            } else {
                break
            }
        }
        guard index < bytes.count else { return nil }
        var id: [UInt8] = []
        if bytes[index] == UInt8(ascii: "\"") {
            index += 1
            while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
                if bytes[index] == UInt8(ascii: "\\"), index + 1 < bytes.count { index += 1 }
                id.append(bytes[index])
                index += 1
            }
        } else {
            while index < bytes.count, !isSpace(bytes[index]), bytes[index] != UInt8(ascii: ";"), bytes[index] != UInt8(ascii: "(") {
                id.append(bytes[index])
                index += 1
            }
        }
        return id.isEmpty ? nil : String(decoding: id, as: UTF8.self)
    }
}
