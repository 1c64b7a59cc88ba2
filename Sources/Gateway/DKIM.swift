import Crypto
import CryptoExtras
import Foundation
import MailCore

/// DKIM signing (RFC 6376) with relaxed/relaxed canonicalization, for RSA-SHA256 and
/// Ed25519-SHA256 (RFC 8463). Pure: the key, the time and the message are arguments.
public enum DKIM {
    /// A signing key and the algorithm it implies.
    public enum Key: Sendable {
        case rsa(_RSA.Signing.PrivateKey)
        case ed25519(Curve25519.Signing.PrivateKey)

        public var algorithm: String {
            switch self {
            case .rsa: return "rsa-sha256"
            case .ed25519: return "ed25519-sha256"
            }
        }

        /// The DNS TXT record that publishes the public key (RFC 6376 3.6.1, RFC 8463 4).
        public var dnsRecord: String {
            switch self {
            case .rsa(let key):
                return "v=DKIM1; k=rsa; p=\(key.publicKey.derRepresentation.base64EncodedString())"
            case .ed25519(let key):
                return "v=DKIM1; k=ed25519; p=\(key.publicKey.rawRepresentation.base64EncodedString())"
            }
        }

        /// A fresh key: RSA-2048 (RFC 8301: 1024 bits at least, 2048 recommended) or Ed25519.
        public static func generateRSA() throws -> Key { .rsa(try _RSA.Signing.PrivateKey(keySize: .bits2048)) }
        public static func generateEd25519() -> Key { .ed25519(Curve25519.Signing.PrivateKey()) }

        /// PEM: PKCS#8 for both kinds (as `openssl genpkey` writes them).
        public var pemRepresentation: String {
            switch self {
            case .rsa(let key): return key.pkcs8PEMRepresentation
            case .ed25519(let key):
                return Self.pem(Self.ed25519PKCS8Prefix + key.rawRepresentation)
            }
        }

        /// Reads a PEM private key written by `pemRepresentation` or openssl (RSA PKCS#1 or
        /// PKCS#8, Ed25519 PKCS#8).
        public init(pem: String) throws {
            let der = Self.der(fromPEM: pem)
            if let der, der.count == Self.ed25519PKCS8Prefix.count + 32, der.starts(with: Self.ed25519PKCS8Prefix) {
                self = .ed25519(try Curve25519.Signing.PrivateKey(rawRepresentation: der.dropFirst(Self.ed25519PKCS8Prefix.count)))
            } else {
                self = .rsa(try _RSA.Signing.PrivateKey(pemRepresentation: pem))
            }
        }

        // RFC 8410 7: the PKCS#8 wrapping of an Ed25519 private key is this prefix and the 32 bytes.
        static let ed25519PKCS8Prefix = Data([0x30, 0x2E, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70,
                                              0x04, 0x22, 0x04, 0x20])

        static func pem(_ der: Data) -> String {
            let base64 = der.base64EncodedString()
            var lines = ["-----BEGIN PRIVATE KEY-----"]
            var index = base64.startIndex
            while index < base64.endIndex {
                let end = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
                lines.append(String(base64[index..<end]))
                index = end
            }
            lines.append("-----END PRIVATE KEY-----")
            return lines.joined(separator: "\n") + "\n"
        }

        static func der(fromPEM pem: String) -> Data? {
            let body = pem.split(whereSeparator: \.isNewline).filter { !$0.hasPrefix("-----") }.joined()
            return Data(base64Encoded: body)
        }

        func sign(_ data: [UInt8]) throws -> Data {
            switch self {
            case .rsa(let key):
                return try key.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5).rawRepresentation
            case .ed25519(let key):
                // RFC 8463 3: PureEdDSA over the SHA-256 hash of the canonicalized data.
                return try key.signature(for: Data(SHA256.hash(data: data)))
            }
        }
    }

    /// The header fields signed, in this order, when present (RFC 6376 5.4.1's recommendations).
    /// From is listed twice: the second, unmatched entry signs its absence, so no second From
    /// can be added without breaking the signature (RFC 6376 8.15).
    public static let signedFields = ["from", "from", "to", "cc", "reply-to", "subject", "date", "message-id",
                                      "in-reply-to", "references", "mime-version", "content-type",
                                      "content-transfer-encoding", "autocrypt"]

    /// `message` with a DKIM-Signature field added on top. `time`: seconds since 1970 (t=).
    public static func sign(_ message: [UInt8], domain: String, selector: String, key: Key, time: Int64) throws -> [UInt8] {
        let field = try signatureField(for: message, domain: domain, selector: selector, key: key, time: time)
        return Array(field.utf8) + message
    }

    /// The `DKIM-Signature: …\r\n` field for `message` (CRLF text).
    public static func signatureField(for message: [UInt8], domain: String, selector: String, key: Key, time: Int64) throws -> String {
        let header = HeaderSection.parse(message)
        let body = header.bodyOffset <= message.count ? Array(message[header.bodyOffset...]) : []
        let bodyHash = Data(SHA256.hash(data: relaxedBody(body))).base64EncodedString()
        // The names that are present are listed; From always, twice (RFC 6376 5.4: From MUST be
        // in h=; listed when absent, its absence is what is signed).
        let present = Set(header.fields.map { $0.name.lowercased() })
        var names: [String] = []
        for name in signedFields where name == "from" || (present.contains(name) && !names.contains(name)) {
            names.append(name)
        }
        let unsigned = "DKIM-Signature: v=1; a=\(key.algorithm); c=relaxed/relaxed; d=\(domain); s=\(selector);\r\n"
            + "\tt=\(time); h=\(names.joined(separator: ":"));\r\n"
            + "\tbh=\(bodyHash);\r\n"
            + "\tb="
        let input = signedData(names, of: header, signatureField: Array(unsigned.utf8), relaxed: true)
        let signature = try key.sign(input).base64EncodedString()
        return unsigned + signature + "\r\n"
    }

    /// What a signature covers (RFC 6376 3.7): the fields named in h=, each name taking the last
    /// instance not yet used, bottom up (5.4.2; a name with none left adds nothing: its absence is
    /// signed), then the signature field itself with an empty b= value and no final CRLF — all
    /// canonicalized, relaxed or simple. The signer and the verifier both build it here.
    static func signedData(_ names: [String], of header: HeaderSection, signatureField: [UInt8], relaxed: Bool) -> [UInt8] {
        func canonical(_ raw: [UInt8]) -> [UInt8] { relaxed ? relaxedHeader(raw) : raw }
        var used: [String: Int] = [:]
        var input: [UInt8] = []
        for name in names {
            let instances = header.fields.filter { $0.name.lowercased() == name }
            let taken = used[name, default: 0]
            used[name] = taken + 1
            guard taken < instances.count else { continue }
            input += canonical(instances[instances.count - 1 - taken].raw) + [13, 10]
        }
        return input + canonical(signatureField)
    }

    /// RFC 6376 3.4.2: name lower-cased, unfolded, runs of WSP to one SP, none at the ends of the
    /// value or around the colon. `raw` is the whole field as it stands, without the final CRLF.
    public static func relaxedHeader(_ raw: [UInt8]) -> [UInt8] {
        guard let colon = raw.firstIndex(of: UInt8(ascii: ":")) else { return raw }
        var name = Array(raw[..<colon])
        while let last = name.last, last == 32 || last == 9 { name.removeLast() }
        var out = name.map { (65...90).contains($0) ? $0 + 32 : $0 }
        out.append(UInt8(ascii: ":"))
        var value: [UInt8] = []
        var pendingSpace = false
        for byte in raw[(colon + 1)...] {
            if byte == 13 || byte == 10 { continue }  // unfold
            if byte == 32 || byte == 9 {
                pendingSpace = true
                continue
            }
            if pendingSpace && !value.isEmpty { value.append(32) }
            pendingSpace = false
            value.append(byte)
        }
        return out + value
    }

    /// RFC 6376 3.4.4: runs of WSP in a line to one SP, none at a line's end, no empty lines at
    /// the end, and a final CRLF unless the body is empty.
    public static func relaxedBody(_ body: [UInt8]) -> [UInt8] {
        var lines: [[UInt8]] = []
        var line: [UInt8] = []
        var index = 0
        while index < body.count {
            let byte = body[index]
            if byte == 13, index + 1 < body.count, body[index + 1] == 10 {
                lines.append(line)
                line = []
                index += 2
                continue
            }
            line.append(byte)
            index += 1
        }
        if !line.isEmpty { lines.append(line) }
        var out: [[UInt8]] = lines.map { line in
            var reduced: [UInt8] = []
            var pendingSpace = false
            for byte in line {
                if byte == 32 || byte == 9 { pendingSpace = true; continue }
                if pendingSpace { reduced.append(32) }
                pendingSpace = false
                reduced.append(byte)
            }
            return reduced
        }
        while let last = out.last, last.isEmpty { out.removeLast() }
        return out.flatMap { $0 + [13, 10] }
    }
}
