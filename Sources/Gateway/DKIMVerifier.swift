import Crypto
import CryptoExtras
import Foundation
import MailCore

/// The outcome of checking one DKIM signature (RFC 6376 6; the words of RFC 8601 2.7.1).
public struct DKIMResult: Sendable, Equatable {
    public enum Verdict: String, Sendable { case none, pass, fail, neutral, temperror, permerror }
    public var verdict: Verdict
    public var domain: String?
    public var selector: String?
    /// Why it is not a pass, for the log and the Authentication-Results comment.
    public var reason: String?

    /// The `dkim=` part of an Authentication-Results field (RFC 8601 2.7.1).
    public var authenticationResult: String {
        var text = "dkim=\(verdict.rawValue)"
        if let reason { text += " (\(reason))" }
        if let domain { text += " header.d=\(domain)" }
        if let selector { text += " header.s=\(selector)" }
        return text
    }
}

/// Where DKIM keys come from: TXT records by name (`nil`: the name does not exist).
public protocol DKIMKeyLookup: Sendable {
    func txt(_ name: String) async throws -> [String]?
}

extension DNSResolver: DKIMKeyLookup {
    public func txt(_ name: String) async throws -> [String]? {
        let response = try await query(name, .txt)
        if response.code == .nameError { return nil }
        return response.answers.compactMap { if case .txt(let text) = $0.data { return text } else { return nil } }
    }
}

extension DKIM {
    /// Checks the DKIM signatures of `message` (at most five), in order. No signature: one
    /// `none` result (RFC 8601 2.7.1: the message was not signed).
    public static func verify(_ message: [UInt8], keys: any DKIMKeyLookup, now: Int64) async -> [DKIMResult] {
        let header = HeaderSection.parse(message)
        let signatures = header.fields.filter { $0.name.lowercased() == "dkim-signature" }.prefix(5)
        guard !signatures.isEmpty else { return [DKIMResult(verdict: .none)] }
        var results: [DKIMResult] = []
        for field in signatures {
            let tags: Signature
            do { tags = try Signature(field) } catch {
                results.append(DKIMResult(verdict: .permerror, reason: error.reason))
                continue
            }
            let records: [String]?
            do {
                records = try await keys.txt("\(tags.selector)._domainkey.\(tags.domain)")
            } catch {
                results.append(DKIMResult(verdict: .temperror, domain: tags.domain, selector: tags.selector, reason: "key lookup failed"))
                continue
            }
            guard let record = records?.first(where: { !$0.isEmpty }) else {
                results.append(DKIMResult(verdict: .permerror, domain: tags.domain, selector: tags.selector, reason: "no key"))
                continue
            }
            results.append(check(tags, field: field, header: header, message: message, keyRecord: record, now: now))
        }
        return results
    }

    /// One signature against its key record (pure).
    static func check(_ tags: Signature, field: HeaderField, header: HeaderSection, message: [UInt8], keyRecord: String, now: Int64) -> DKIMResult {
        func result(_ verdict: DKIMResult.Verdict, _ reason: String?) -> DKIMResult {
            DKIMResult(verdict: verdict, domain: tags.domain, selector: tags.selector, reason: reason)
        }
        if let expiry = tags.expiry, expiry < now { return result(.fail, "signature expired") }
        let key = tagList(keyRecord)
        if let version = key["v"], version != "DKIM1" { return result(.permerror, "bad key record") }
        let kind = key["k"] ?? "rsa"
        guard let encoded = key["p"]?.filter({ !$0.isWhitespace }) else { return result(.permerror, "bad key record") }
        guard !encoded.isEmpty else { return result(.permerror, "key revoked") }
        guard let keyBytes = Data(base64Encoded: encoded) else { return result(.permerror, "bad key record") }
        guard (kind == "rsa" && tags.algorithm == "rsa-sha256") || (kind == "ed25519" && tags.algorithm == "ed25519-sha256") else {
            return result(.permerror, "algorithm does not match the key")
        }
        // The body (RFC 6376 3.7 steps 1-2), cut at l= when given.
        let body = header.bodyOffset <= message.count ? Array(message[header.bodyOffset...]) : []
        var canonical = tags.relaxedBody ? relaxedBody(body) : simpleBody(body)
        if let length = tags.bodyLength {
            guard length <= canonical.count else { return result(.permerror, "l= longer than the body") }
            canonical = Array(canonical.prefix(length))
        }
        guard Data(SHA256.hash(data: canonical)).base64EncodedString() == tags.bodyHash else {
            return result(.fail, "body hash did not verify")
        }
        let input = signedData(tags.signedFields, of: header, signatureField: withoutSignatureValue(field.raw),
                               relaxed: tags.relaxedHeader)
        guard let signature = Data(base64Encoded: tags.signature) else { return result(.permerror, "bad b= value") }
        let valid: Bool
        switch kind {
        case "rsa":
            // RFC 8301 3.2: keys from 1024 bits up are accepted.
            guard let publicKey = try? _RSA.Signing.PublicKey(unsafeDERRepresentation: keyBytes), publicKey.keySizeInBits >= 1024 else {
                return result(.permerror, "unusable key")
            }
            valid = publicKey.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: input),
                                               padding: .insecurePKCS1v1_5)
        default:
            guard let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: keyBytes) else { return result(.permerror, "unusable key") }
            valid = publicKey.isValidSignature(signature, for: Data(SHA256.hash(data: input)))
        }
        return valid ? result(.pass, nil) : result(.fail, "signature did not verify")
    }

    /// RFC 6376 3.4.3: the body as it is, without empty lines at the end, ending in one CRLF.
    public static func simpleBody(_ body: [UInt8]) -> [UInt8] {
        var end = body.count
        while end >= 2 && body[end - 2] == 13 && body[end - 1] == 10 { end -= 2 }
        return Array(body[..<end]) + [13, 10]
    }

    /// The raw field with the value of its b= tag removed (RFC 6376 3.7: "b=" kept, value empty).
    static func withoutSignatureValue(_ raw: [UInt8]) -> [UInt8] {
        guard let colon = raw.firstIndex(of: UInt8(ascii: ":")) else { return raw }
        var out = Array(raw[...colon])
        var segment: [UInt8] = []
        func flush(last: Bool) {
            let name = segment.prefix { $0 != UInt8(ascii: "=") }.filter { ![32, 9, 13, 10].contains($0) }
            if name == [UInt8(ascii: "b")], let equals = segment.firstIndex(of: UInt8(ascii: "=")) {
                out += segment[...equals]
            } else {
                out += segment
            }
            if !last { out.append(UInt8(ascii: ";")) }
            segment = []
        }
        for byte in raw[(colon + 1)...] {
            if byte == UInt8(ascii: ";") { flush(last: false) } else { segment.append(byte) }
        }
        flush(last: true)
        return out
    }

    /// A tag-list (RFC 6376 3.2) as name → value, whitespace around names and values removed.
    static func tagList(_ text: String) -> [String: String] {
        var tags: [String: String] = [:]
        for item in text.split(separator: ";") {
            guard let equals = item.firstIndex(of: "=") else { continue }
            let name = item[..<equals].trimmingCharacters(in: .whitespacesAndNewlines)
            let value = item[item.index(after: equals)...].trimmingCharacters(in: .whitespacesAndNewlines)
            if !name.isEmpty, tags[name] == nil { tags[name] = value }
        }
        return tags
    }

    /// The tags of a DKIM-Signature field this verifier needs; nil when one is missing or bad.
    struct Signature {
        var algorithm: String
        var domain: String
        var selector: String
        var signedFields: [String]
        var bodyHash: String
        var signature: String
        var relaxedHeader: Bool
        var relaxedBody: Bool
        var bodyLength: Int?
        var expiry: Int64?

        struct Malformed: Error { var reason: String }

        /// Labels of letters, digits and hyphens, not starting or ending with a hyphen (RFC 5321
        /// 4.1.2 Domain; RFC 6376 3.5 selector), at most 253 characters; underscores allowed in
        /// selectors in practice.
        static func isDomainName(_ text: String) -> Bool {
            guard !text.isEmpty, text.utf8.count <= 253 else { return false }
            return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
                !label.isEmpty && label.utf8.count <= 63 && label.first != "-" && label.last != "-"
                    && label.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0)
                        || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }
            }
        }

        init(_ field: HeaderField) throws(Malformed) {
            let tags = DKIM.tagList(field.value)
            guard tags["v"] == "1", let a = tags["a"], let d = tags["d"], let s = tags["s"], let h = tags["h"],
                  let bh = tags["bh"], let b = tags["b"] else { throw Malformed(reason: "malformed signature") }
            algorithm = a.lowercased()
            // RFC 6376 3.5: d= is a domain name, s= a sub-domain (dot-separated labels). Anything
            // else is refused before a lookup and never reaches our Authentication-Results.
            guard Self.isDomainName(d), Self.isDomainName(s) else { throw Malformed(reason: "malformed d= or s=") }
            domain = d.lowercased()
            selector = s
            signedFields = h.split(separator: ":").map { $0.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() }
            // RFC 6376 6.1.1: a signature that does not cover From is ignored (PERMFAIL).
            guard signedFields.contains("from") else { throw Malformed(reason: "From not signed") }
            bodyHash = bh.filter { !$0.isWhitespace }
            signature = b.filter { !$0.isWhitespace }
            let c = (tags["c"] ?? "simple/simple").lowercased().split(separator: "/").map(String.init)
            guard let headerCanon = c.first, ["simple", "relaxed"].contains(headerCanon),
                  ["simple", "relaxed"].contains(c.count > 1 ? c[1] : "simple") else { throw Malformed(reason: "unknown canonicalization") }
            relaxedHeader = headerCanon == "relaxed"
            relaxedBody = c.count > 1 && c[1] == "relaxed"
            if let l = tags["l"] {
                guard let length = Int(l), length >= 0 else { throw Malformed(reason: "malformed signature") }
                bodyLength = length
            }
            if let x = tags["x"] {
                guard let time = Int64(x) else { throw Malformed(reason: "malformed signature") }
                expiry = time
            }
        }
    }
}
