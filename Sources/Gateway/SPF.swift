// SPF.swift - Sender Policy Framework evaluation (RFC 7208).
//
// `SPF.check` runs check_host() (RFC 7208 section 4) for a client address and the
// MAIL FROM (or, for the null sender, HELO) identity. All DNS access goes through a
// caller-supplied `SPFResolver`, so the caller owns timeouts and caching. Every loop is
// bounded by the input size or by the section 4.6.4 limits, and no record text, DNS
// answer or identity can make this code trap.

/// Where SPF gets its DNS answers. nil / [] = the name does not exist or has no such record; a thrown error = temporary DNS failure (-> temperror).
public protocol SPFResolver: Sendable {
    /// TXT records of `name`, each record's strings already joined.
    func spfTXT(_ name: String) async throws -> [String]?
    /// A (4-byte) or AAAA (16-byte) addresses of `name`.
    func spfAddresses(of name: String, ipv6: Bool) async throws -> [[UInt8]]
    /// MX exchange host names of `name`, in any order.
    func spfMX(_ name: String) async throws -> [String]
    /// PTR names of `address` (4 or 16 bytes); may return [] if unsupported.
    func spfPTR(_ address: [UInt8]) async throws -> [String]
}

public enum SPFResult: String, Sendable, Equatable {
    case none, neutral, pass, fail, softfail, temperror, permerror
}

public struct SPFVerdict: Sendable, Equatable {
    public var result: SPFResult
    /// The domain checked (the MAIL FROM domain, or the HELO name when MAIL FROM is null, RFC 7208 2.4).
    public var domain: String
    /// "mailfrom" or "helo".
    public var scope: String
    /// Short text for logs/comments, e.g. "no SPF record"; never includes the client IP.
    public var reason: String?

    public init(result: SPFResult, domain: String, scope: String, reason: String? = nil) {
        self.result = result
        self.domain = domain
        self.scope = scope
        self.reason = reason
    }

    /// The spf part of an Authentication-Results header (RFC 8601 2.7.2), e.g.
    /// `spf=pass smtp.mailfrom=example.com`; a reason goes in a comment:
    /// `spf=permerror (syntax error) smtp.mailfrom=x.test`; for the HELO identity no property.
    public var authenticationResult: String {
        var text = "spf=" + result.rawValue
        if let reason, !reason.isEmpty {
            text += " (" + Self.commentText(reason) + ")"
        }
        // PRIV-6: the client's HELO name is never written down, not even here: a verdict on it
        // (null sender, RFC 7208 2.3) carries no property.
        if scope == "helo" { return text }
        return text + " smtp." + scope + "=" + Self.propertyValue(domain)
    }

    /// RFC 5322 comment text: printable ASCII without "(", ")" and "\" so the comment cannot be broken.
    private static func commentText(_ text: String) -> String {
        String(decoding: text.utf8.filter { $0 >= 0x20 && $0 <= 0x7E && $0 != 0x28 && $0 != 0x29 && $0 != 0x5C },
               as: UTF8.self)
    }

    /// A bare token when possible, otherwise a quoted-string (RFC 8601 2.2 `value`), because the
    /// identity comes from the SMTP client and may contain anything.
    private static func propertyValue(_ text: String) -> String {
        let tspecials = Array("()<>@,;:\\\"/[]?=".utf8)
        if !text.isEmpty, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && !tspecials.contains($0) }) {
            return text
        }
        var quoted = "\""
        for scalar in text.unicodeScalars where scalar.value >= 0x20 && scalar.value != 0x7F {
            if scalar == "\"" || scalar == "\\" { quoted += "\\" }
            quoted.unicodeScalars.append(scalar)
        }
        return quoted + "\""
    }
}

public enum SPF {
    /// check_host() for the client address `ip` (4 or 16 bytes), the MAIL FROM address (nil for the null sender <>), and the HELO name.
    public static func check(ip: [UInt8], mailFrom: String?, helo: String, resolver: any SPFResolver) async -> SPFVerdict {
        let heloName = trimmed(helo)
        var from = trimmed(mailFrom ?? "")
        if from.hasPrefix("<") && from.hasSuffix(">") && from.count >= 2 {
            from = String(from.dropFirst().dropLast())
        }
        // 2.4: with a null reverse-path the HELO identity is checked, as postmaster@helo.
        let scope: String, domain: String, localPart: Substring
        if from.isEmpty {
            (scope, domain, localPart) = ("helo", heloName, "")
        } else if let at = from.lastIndex(of: "@") {
            (scope, domain, localPart) = ("mailfrom", String(from[from.index(after: at)...]), from[..<at])
        } else {
            (scope, domain, localPart) = ("mailfrom", from, "")
        }
        guard let client = normalized(ip) else {
            return SPFVerdict(result: .none, domain: domain, scope: scope, reason: "invalid client address")
        }
        var evaluator = Evaluator(resolver: resolver, ip: client,
                                  localPart: localPart.isEmpty ? "postmaster" : String(localPart), // 4.3
                                  senderDomain: domain, helo: heloName)
        do {
            let outcome = try await evaluator.checkHost(domain, depth: 0)
            return SPFVerdict(result: outcome.result, domain: domain, scope: scope, reason: outcome.reason)
        } catch {
            switch error {
            case .permerror(let reason):
                return SPFVerdict(result: .permerror, domain: domain, scope: scope, reason: reason)
            case .temperror(let reason):
                return SPFVerdict(result: .temperror, domain: domain, scope: scope, reason: reason)
            }
        }
    }

    /// Parses "1.2.3.4" or an IPv6 text ("::1", "2001:db8::1", "::ffff:1.2.3.4") into 4/16 bytes; nil if invalid.
    public static func parseIP(_ text: String) -> [UInt8]? {
        let bytes = Array(text.utf8)
        return bytes.contains(ascii(":")) ? parseIPv6(bytes[...]) : parseIPv4(bytes[...])
    }

    /// Expands a macro-string (RFC 7208 7) for `context`; throws permerror on bad macro syntax.
    static func expand(_ macroString: String, _ context: MacroContext) throws(SPFAbort) -> String {
        try MacroString(Array(macroString.utf8)).expand(context)
    }

    // MARK: Limits (4.6.4)

    static let maxDNSTerms = 10
    static let maxVoidLookups = 2
    static let maxNamesPerLookup = 10

    static let syntaxError = SPFAbort.permerror("syntax error in record")
}

/// Why evaluation stopped early, with a log-safe reason (never the client IP).
enum SPFAbort: Error, Equatable {
    case permerror(String)
    case temperror(String)
}

/// The values macros expand to (RFC 7208 7.2).
struct MacroContext: Sendable {
    var localPart: String     // l; "postmaster" when the sender has none (4.3)
    var senderDomain: String  // o
    var domain: String        // d: <domain> of the current check_host()
    var ip: [UInt8]           // i, v: 4 or 16 bytes
    var helo: String          // h

    var sender: String { localPart + "@" + senderDomain }  // s
}

// MARK: - Evaluation

private struct Outcome {
    var result: SPFResult
    var reason: String
}

/// One check_host() run. The DNS-term and void-lookup counters span every nested
/// include/redirect, as the limits apply to the whole evaluation (4.6.4).
private struct Evaluator {
    let resolver: any SPFResolver
    let ip: [UInt8]
    let localPart: String
    let senderDomain: String
    let helo: String
    var dnsTerms = 0
    var voidLookups = 0

    func context(_ domain: String) -> MacroContext {
        MacroContext(localPart: localPart, senderDomain: senderDomain, domain: domain, ip: ip, helo: helo)
    }

    mutating func checkHost(_ domain: String, depth: Int) async throws(SPFAbort) -> Outcome {
        // Nesting is already bounded by the 10-term limit; this is only a backstop.
        guard depth <= SPF.maxDNSTerms else { throw .permerror("include/redirect nesting too deep") }
        // 4.3: a malformed or single-label domain gives "none" without querying.
        guard let name = SPF.hostName(domain), SPF.endsWithTopLabel(Array(name.utf8)[...]) else {
            return Outcome(result: .none, reason: "malformed domain")
        }
        let texts: [String]
        do { texts = try await resolver.spfTXT(name) ?? [] } catch { throw .temperror("DNS error looking up SPF record") }
        // 4.5: exactly one record starting with "v=spf1"; none -> none, several -> permerror.
        let records = texts.filter(SPF.isSPFRecord)
        guard let text = records.first else { return Outcome(result: .none, reason: "no SPF record") }
        guard records.count == 1 else { throw .permerror("multiple SPF records") }
        let record = try SPFRecord(text)

        for directive in record.directives {
            if try await matches(directive.mechanism, domain: name, depth: depth) {
                return Outcome(result: directive.qualifier, reason: "matched " + directive.mechanism.name)
            }
        }
        // 6.1: redirect only applies when no mechanism matched; a target without a record is an error.
        guard let redirect = record.redirect else { return Outcome(result: .neutral, reason: "no mechanism matched") }
        try countDNSTerm()
        let outcome = try await checkHost(target(redirect, name), depth: depth + 1)
        guard outcome.result != .none else { throw .permerror("redirect target has no SPF record") }
        return outcome
    }

    private mutating func matches(_ mechanism: Mechanism, domain: String, depth: Int) async throws(SPFAbort) -> Bool {
        switch mechanism {
        case .all:
            return true

        case .ip(let network, let prefix):
            return SPF.prefixMatches(ip, network, prefix)

        case .include(let spec):
            try countDNSTerm()
            // 5.2: only "pass" matches; "none" is a permerror; temperror/permerror propagate (thrown).
            switch try await checkHost(target(spec, domain), depth: depth + 1).result {
            case .pass: return true
            case .none: throw .permerror("included domain has no SPF record")
            default: return false
            }

        case .a(let spec, let cidr):
            try countDNSTerm()
            guard let name = SPF.hostName(target(spec, domain)) else { return false }
            let addresses = try await lookupAddresses(name, ipv6: ip.count == 16)
            if addresses.isEmpty { try countVoidLookup() }
            return addresses.contains { SPF.prefixMatches(ip, $0, cidr.length(for: ip)) }

        case .mx(let spec, let cidr):
            try countDNSTerm()
            guard let name = SPF.hostName(target(spec, domain)) else { return false }
            let exchanges: [String]
            do { exchanges = try await resolver.spfMX(name) } catch { throw .temperror("DNS error looking up MX") }
            if exchanges.isEmpty { try countVoidLookup() }
            // 4.6.4: more than 10 MX names is a permerror, not a truncation.
            guard exchanges.count <= SPF.maxNamesPerLookup else { throw .permerror("more than 10 MX records") }
            for exchange in exchanges {
                guard let host = SPF.hostName(exchange) else { continue }  // null MX "." (RFC 7505)
                let addresses = try await lookupAddresses(host, ipv6: ip.count == 16)
                if addresses.contains(where: { SPF.prefixMatches(ip, $0, cidr.length(for: ip)) }) { return true }
            }
            return false

        case .ptr(let spec):
            try countDNSTerm()
            guard let name = SPF.hostName(target(spec, domain)) else { return false }
            // 5.5: a failed PTR lookup is simply no match.
            let names: [String]
            do { names = try await resolver.spfPTR(ip) } catch { return false }
            if names.isEmpty { try countVoidLookup() }
            // 4.6.4: names beyond the first 10 are ignored.
            for candidate in names.prefix(SPF.maxNamesPerLookup) {
                guard let host = SPF.hostName(candidate), SPF.isSameOrSubdomain(host, of: name) else { continue }
                // 5.5: a name whose address lookup fails is skipped.
                guard let addresses = try? await resolver.spfAddresses(of: host, ipv6: ip.count == 16) else { continue }
                if addresses.contains(where: { SPF.normalized($0) == ip }) { return true }
            }
            return false

        case .exists(let spec):
            try countDNSTerm()
            guard let name = SPF.hostName(target(spec, domain)) else { return false }
            // 5.7: always an A query, whatever the client's address family.
            let addresses = try await lookupAddresses(name, ipv6: false)
            if addresses.isEmpty { try countVoidLookup() }
            return !addresses.isEmpty
        }
    }

    /// The expanded, length-limited target name, or the current domain when the spec is absent (4.8).
    private func target(_ spec: MacroString?, _ domain: String) -> String {
        guard let spec else { return domain }
        return SPF.truncated(spec.expand(context(domain)))
    }

    /// Addresses of the requested family; IPv4-mapped answers count as IPv4 (5).
    private func lookupAddresses(_ name: String, ipv6: Bool) async throws(SPFAbort) -> [[UInt8]] {
        do {
            return try await resolver.spfAddresses(of: name, ipv6: ipv6).compactMap(SPF.normalized)
        } catch {
            throw .temperror(ipv6 ? "DNS error looking up AAAA" : "DNS error looking up A")
        }
    }

    private mutating func countDNSTerm() throws(SPFAbort) {
        dnsTerms += 1
        guard dnsTerms <= SPF.maxDNSTerms else { throw .permerror("more than 10 DNS lookups") }
    }

    private mutating func countVoidLookup() throws(SPFAbort) {
        voidLookups += 1
        guard voidLookups <= SPF.maxVoidLookups else { throw .permerror("more than 2 void lookups") }
    }
}

// MARK: - Record syntax (4.6, 5, 6)

private struct DualCIDR {
    var ipv4 = 32
    var ipv6 = 128

    func length(for ip: [UInt8]) -> Int { ip.count == 4 ? ipv4 : ipv6 }
}

private enum Mechanism {
    case all
    case include(MacroString)
    case a(MacroString?, DualCIDR)
    case mx(MacroString?, DualCIDR)
    case ptr(MacroString?)
    case ip([UInt8], Int)  // ip4 (4 bytes) or ip6 (16 bytes) with prefix length
    case exists(MacroString)

    var name: String {
        switch self {
        case .all: "all"
        case .include: "include"
        case .a: "a"
        case .mx: "mx"
        case .ptr: "ptr"
        case .ip(let network, _): network.count == 4 ? "ip4" : "ip6"
        case .exists: "exists"
        }
    }
}

private struct Directive {
    var qualifier: SPFResult
    var mechanism: Mechanism
}

private struct SPFRecord {
    var directives: [Directive] = []
    var redirect: MacroString?

    /// Parses the whole record first: any syntax error anywhere is a permerror (4.6).
    init(_ text: String) throws(SPFAbort) {
        var sawExplanation = false
        // Terms are separated by SP only; the first term is the version (4.6.1).
        for term in Array(text.utf8).split(separator: SPF.ascii(" ")).dropFirst() {
            guard let equals = term.firstIndex(of: SPF.ascii("=")), SPF.isModifierName(term[..<equals]) else {
                directives.append(try Self.directive(term))
                continue
            }
            let value = Array(term[(equals + 1)...])
            switch String(decoding: term[..<equals].map(SPF.lower), as: UTF8.self) {
            case "redirect":
                guard redirect == nil else { throw .permerror("redirect appears twice") }  // 6
                redirect = try SPF.domainSpec(value)
            case "exp":
                // 6.2: only syntax-checked; the explanation is never fetched.
                guard !sawExplanation else { throw .permerror("exp appears twice") }
                sawExplanation = true
                _ = try SPF.domainSpec(value)
            default:
                // 6: unknown modifiers are ignored, but must still be valid macro-strings.
                _ = try MacroString(value, explanationLetters: true)
            }
        }
    }

    private static func directive(_ term: ArraySlice<UInt8>) throws(SPFAbort) -> Directive {
        var body = term
        var qualifier = SPFResult.pass  // 4.6.2: the default qualifier is "+"
        if let first = body.first, let explicit = Self.qualifier(first) {
            qualifier = explicit
            body = body.dropFirst()
        }

        let nameEnd = body.firstIndex(where: { $0 == SPF.ascii(":") || $0 == SPF.ascii("/") }) ?? body.endIndex
        let rest = body[nameEnd...]
        let mechanism: Mechanism
        switch String(decoding: body[..<nameEnd].map(SPF.lower), as: UTF8.self) {
        case "all":
            guard rest.isEmpty else { throw SPF.syntaxError }
            mechanism = .all
        case "include":
            mechanism = .include(try requiredDomainSpec(rest))
        case "exists":
            mechanism = .exists(try requiredDomainSpec(rest))
        case "ptr":
            mechanism = .ptr(rest.isEmpty ? nil : try requiredDomainSpec(rest))
        case "a":
            let (spec, cidr) = try domainSpecAndCIDR(rest)
            mechanism = .a(spec, cidr)
        case "mx":
            let (spec, cidr) = try domainSpecAndCIDR(rest)
            mechanism = .mx(spec, cidr)
        case "ip4":
            let (network, prefix) = try networkAndPrefix(rest, maxPrefix: 32)
            guard let address = SPF.parseIPv4(network) else { throw SPF.syntaxError }
            mechanism = .ip(address, prefix)
        case "ip6":
            let (network, prefix) = try networkAndPrefix(rest, maxPrefix: 128)
            guard let address = SPF.parseIPv6(network) else { throw SPF.syntaxError }
            mechanism = .ip(address, prefix)
        default:
            throw .permerror("unknown mechanism")  // 5: unknown mechanisms are a permerror
        }
        return Directive(qualifier: qualifier, mechanism: mechanism)
    }

    private static func qualifier(_ byte: UInt8) -> SPFResult? {
        switch byte {
        case SPF.ascii("+"): .pass
        case SPF.ascii("-"): .fail
        case SPF.ascii("~"): .softfail
        case SPF.ascii("?"): .neutral
        default: nil
        }
    }

    /// ":" domain-spec
    private static func requiredDomainSpec(_ rest: ArraySlice<UInt8>) throws(SPFAbort) -> MacroString {
        guard rest.first == SPF.ascii(":") else { throw SPF.syntaxError }
        return try SPF.domainSpec(Array(rest.dropFirst()))
    }

    /// [ ":" domain-spec ] [ dual-cidr-length ] (5.3, 5.4). The cidr lengths are taken from the
    /// end, because a domain-spec may itself contain "/" (any visible character but "%").
    private static func domainSpecAndCIDR(_ rest: ArraySlice<UInt8>) throws(SPFAbort) -> (MacroString?, DualCIDR) {
        var text = rest
        var cidr = DualCIDR()
        if let (digits, cut) = trailingCIDR(text, slashes: 2) {
            cidr.ipv6 = try SPF.prefixLength(digits, max: 128)
            text = text[..<cut]
        }
        if let (digits, cut) = trailingCIDR(text, slashes: 1) {
            cidr.ipv4 = try SPF.prefixLength(digits, max: 32)
            text = text[..<cut]
        }
        return (text.isEmpty ? nil : try requiredDomainSpec(text), cidr)
    }

    /// The digits of a trailing "/<digits>" (or "//<digits>"), and where that suffix starts.
    private static func trailingCIDR(_ text: ArraySlice<UInt8>, slashes: Int) -> (ArraySlice<UInt8>, Int)? {
        var start = text.endIndex
        while start > text.startIndex, SPF.isDigit(text[start - 1]) { start -= 1 }
        let cut = start - slashes
        guard start < text.endIndex, cut >= text.startIndex,
              text[cut..<start].allSatisfy({ $0 == SPF.ascii("/") }) else { return nil }
        return (text[start...], cut)
    }

    /// ":" network [ "/" prefix ] for ip4 and ip6 (5.6).
    private static func networkAndPrefix(_ rest: ArraySlice<UInt8>, maxPrefix: Int) throws(SPFAbort) -> (ArraySlice<UInt8>, Int) {
        guard rest.first == SPF.ascii(":") else { throw SPF.syntaxError }
        let body = rest.dropFirst()
        guard let slash = body.firstIndex(of: SPF.ascii("/")) else { return (body, maxPrefix) }
        return (body[..<slash], try SPF.prefixLength(body[(slash + 1)...], max: maxPrefix))
    }
}

// MARK: - Macros (7)

/// A parsed macro-string (7.1); the syntax is checked once, when the record is read.
struct MacroString: Sendable {
    enum Piece: Sendable {
        case text([UInt8])
        case macro(Macro)
    }

    struct Macro: Sendable {
        var letter: UInt8        // lowercase macro-letter
        var urlEscape: Bool      // written in uppercase (7.3)
        var keep: Int?           // DIGIT transformer: number of right-hand parts
        var reverse: Bool        // "r" transformer
        var delimiters: [UInt8]  // default "."
    }

    private var pieces: [Piece] = []
    /// Whether the text ends in a macro-expand, one of the two valid domain-ends (7.1).
    private(set) var endsWithMacro = false

    /// `explanationLetters` also admits c, r and t, which are only valid outside domain-specs (7.2).
    init(_ bytes: [UInt8], explanationLetters: Bool = false) throws(SPFAbort) {
        let letters = Array((explanationLetters ? "slodiphvcrt" : "slodiphv").utf8)
        var i = 0
        while i < bytes.count {
            guard bytes[i] == SPF.ascii("%") else {
                // macro-literal: visible ASCII except "%"
                guard bytes[i] >= 0x21 && bytes[i] <= 0x7E else { throw SPF.syntaxError }
                pieces.append(.text([bytes[i]]))
                endsWithMacro = false
                i += 1
                continue
            }
            guard i + 1 < bytes.count else { throw SPF.syntaxError }
            endsWithMacro = true
            switch bytes[i + 1] {
            case SPF.ascii("%"): pieces.append(.text(Array("%".utf8)))
            case SPF.ascii("_"): pieces.append(.text(Array(" ".utf8)))
            case SPF.ascii("-"): pieces.append(.text(Array("%20".utf8)))
            case SPF.ascii("{"):
                var j = i + 2
                guard j < bytes.count, letters.contains(SPF.lower(bytes[j])) else { throw SPF.syntaxError }
                var macro = Macro(letter: SPF.lower(bytes[j]), urlEscape: SPF.lower(bytes[j]) != bytes[j],
                                  keep: nil, reverse: false, delimiters: [])
                j += 1
                var keep = 0, digits = 0
                while j < bytes.count, SPF.isDigit(bytes[j]) {
                    keep = min(keep * 10 + Int(bytes[j] - SPF.ascii("0")), 1_000)  // capped: never overflows
                    digits += 1
                    j += 1
                }
                if digits > 0 {
                    guard keep > 0 else { throw SPF.syntaxError }  // 7.3: the DIGIT must be nonzero
                    macro.keep = keep
                }
                if j < bytes.count, SPF.lower(bytes[j]) == SPF.ascii("r") {
                    macro.reverse = true
                    j += 1
                }
                while j < bytes.count, Array(".-+,/_=".utf8).contains(bytes[j]) {
                    macro.delimiters.append(bytes[j])
                    j += 1
                }
                guard j < bytes.count, bytes[j] == SPF.ascii("}") else { throw SPF.syntaxError }
                pieces.append(.macro(macro))
                i = j + 1
                continue
            default:
                throw SPF.syntaxError  // "%" must be followed by "{", "%", "_" or "-"
            }
            i += 2
        }
    }

    func expand(_ context: MacroContext) -> String {
        var out: [UInt8] = []
        for piece in pieces {
            switch piece {
            case .text(let text): out += text
            case .macro(let macro): out += macro.expand(context)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension MacroString.Macro {
    func expand(_ context: MacroContext) -> [UInt8] {
        let value: [UInt8]
        switch letter {
        case SPF.ascii("s"): value = Array(context.sender.utf8)
        case SPF.ascii("l"): value = Array(context.localPart.utf8)
        case SPF.ascii("o"): value = Array(context.senderDomain.utf8)
        case SPF.ascii("d"): value = Array(context.domain.utf8)
        case SPF.ascii("i"): value = SPF.macroAddress(context.ip)
        // 7.3: "unknown" is permitted; validating the PTR name would cost extra lookups.
        case SPF.ascii("p"): value = Array("unknown".utf8)
        case SPF.ascii("v"): value = Array((context.ip.count == 4 ? "in-addr" : "ip6").utf8)
        case SPF.ascii("h"): value = Array(context.helo.utf8)
        // c, r, t are only accepted in unknown-modifier values, which are never expanded.
        default: value = []
        }
        // 7.3: split on the delimiters, optionally reverse, keep the right-hand parts, join with ".".
        let separators = delimiters.isEmpty ? [SPF.ascii(".")] : delimiters
        var parts = value.split(omittingEmptySubsequences: false, whereSeparator: { separators.contains($0) })
        if reverse { parts.reverse() }
        if let keep, keep < parts.count { parts = Array(parts.suffix(keep)) }
        let joined = Array(parts.joined(separator: [SPF.ascii(".")]))
        return urlEscape ? SPF.percentEncoded(joined) : joined
    }
}

// MARK: - Helpers

extension SPF {
    static func ascii(_ character: Unicode.Scalar) -> UInt8 { UInt8(truncatingIfNeeded: character.value) }
    static func lower(_ byte: UInt8) -> UInt8 { byte >= 0x41 && byte <= 0x5A ? byte + 0x20 : byte }
    static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
    static func isAlpha(_ byte: UInt8) -> Bool { lower(byte) >= 0x61 && lower(byte) <= 0x7A }
    static func isAlphanumeric(_ byte: UInt8) -> Bool { isDigit(byte) || isAlpha(byte) }

    static func trimmed(_ text: String) -> String {
        let scalars = text.unicodeScalars
        let isSpace: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }
        guard let start = scalars.firstIndex(where: { !isSpace($0) }),
              let end = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(scalars[start...end])
    }

    /// 4.5: a record starts with "v=spf1" (any case) followed by SP or the end.
    static func isSPFRecord(_ text: String) -> Bool {
        let head = Array(text.utf8.prefix(7))
        guard head.count >= 6, head[..<6].map(lower) == Array("v=spf1".utf8) else { return false }
        return head.count == 6 || head[6] == ascii(" ")
    }

    /// name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) (6)
    static func isModifierName(_ name: ArraySlice<UInt8>) -> Bool {
        guard let first = name.first, isAlpha(first) else { return false }
        return name.allSatisfy { isAlphanumeric($0) || $0 == ascii("-") || $0 == ascii("_") || $0 == ascii(".") }
    }

    /// domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand (7.1)
    static func domainSpec(_ bytes: [UInt8]) throws(SPFAbort) -> MacroString {
        let spec = try MacroString(bytes)
        guard spec.endsWithMacro || endsWithTopLabel(bytes[...]) else { throw syntaxError }
        return spec
    }

    /// Whether the name has at least two labels and the last one (ignoring a trailing dot) is a
    /// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ).
    static func endsWithTopLabel(_ name: ArraySlice<UInt8>) -> Bool {
        var name = name
        if name.last == ascii(".") { name = name.dropLast() }
        guard let dot = name.lastIndex(of: ascii(".")) else { return false }
        let label = name[(dot + 1)...]
        guard let first = label.first, let last = label.last, isAlphanumeric(first), isAlphanumeric(last),
              label.allSatisfy({ isAlphanumeric($0) || $0 == ascii("-") }) else { return false }
        return label.contains { isAlpha($0) || $0 == ascii("-") }
    }

    /// The name without a trailing dot, or nil if it cannot be queried: empty or over-long labels,
    /// more than 253 characters, or bytes outside visible ASCII (4.3).
    static func hostName(_ name: String) -> String? {
        var bytes = Array(name.utf8)[...]
        if bytes.last == ascii(".") { bytes = bytes.dropLast() }
        guard !bytes.isEmpty, bytes.count <= 253, bytes.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else { return nil }
        for label in bytes.split(separator: ascii("."), omittingEmptySubsequences: false)
        where label.isEmpty || label.count > 63 {
            return nil
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// 7.3: an expanded name over 253 characters loses labels from the left until it fits.
    static func truncated(_ name: String) -> String {
        var bytes = Array(name.utf8)[...]
        if bytes.last == ascii(".") { bytes = bytes.dropLast() }
        while bytes.count > 253, let dot = bytes.firstIndex(of: ascii(".")) {
            bytes = bytes[(dot + 1)...]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func isSameOrSubdomain(_ host: String, of domain: String) -> Bool {
        let host = host.utf8.map(lower), domain = domain.utf8.map(lower)
        return host == domain || (host.count > domain.count && Array(host.suffix(domain.count + 1)) == [ascii(".")] + domain)
    }

    /// Unreserved characters (RFC 3986) stay; everything else becomes %XX (7.3).
    static func percentEncoded(_ bytes: [UInt8]) -> [UInt8] {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            if isAlphanumeric(byte) || byte == ascii("-") || byte == ascii(".") || byte == ascii("_") || byte == ascii("~") {
                out.append(byte)
            } else {
                out += [ascii("%"), hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            }
        }
        return out
    }

    /// %{i}: dotted quad for IPv4, dot-separated nibbles for IPv6 (7.3).
    static func macroAddress(_ ip: [UInt8]) -> [UInt8] {
        if ip.count == 4 {
            return Array(ip.map { String($0) }.joined(separator: ".").utf8)
        }
        let hex = Array("0123456789abcdef".utf8)
        let nibbles = ip.flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 0x0F)]] }
        return Array(nibbles.map { [$0] }.joined(separator: [ascii(".")]))
    }

    // MARK: Addresses

    /// 4-byte IPv4 or 16-byte IPv6; an IPv4-mapped IPv6 address becomes IPv4 (5).
    static func normalized(_ ip: [UInt8]) -> [UInt8]? {
        switch ip.count {
        case 4:
            return ip
        case 16:
            let mapped = ip[..<10].allSatisfy { $0 == 0 } && ip[10] == 0xFF && ip[11] == 0xFF
            return mapped ? Array(ip[12...]) : ip
        default:
            return nil
        }
    }

    static func prefixMatches(_ ip: [UInt8], _ network: [UInt8], _ bits: Int) -> Bool {
        guard ip.count == network.count, bits >= 0, bits <= ip.count * 8 else { return false }
        let whole = bits / 8, rest = bits % 8
        guard ip[..<whole] == network[..<whole] else { return false }
        guard rest > 0 else { return true }
        let mask = UInt8(0xFF) << UInt8(8 - rest)
        return ip[whole] & mask == network[whole] & mask
    }

    /// A cidr-length: decimal without leading zeros, at most `max` (5.6).
    static func prefixLength(_ digits: ArraySlice<UInt8>, max: Int) throws(SPFAbort) -> Int {
        guard let value = decimal(digits, maxDigits: 3), value <= max else { throw syntaxError }
        return value
    }

    /// Decimal digits without a leading zero (other than "0" itself).
    private static func decimal(_ digits: ArraySlice<UInt8>, maxDigits: Int) -> Int? {
        guard let first = digits.first, digits.count <= maxDigits, digits.allSatisfy(isDigit),
              first != ascii("0") || digits.count == 1 else { return nil }
        return digits.reduce(0) { $0 * 10 + Int($1 - ascii("0")) }
    }

    static func parseIPv4(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        let parts = text.split(separator: ascii("."), omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard let value = decimal(part, maxDigits: 3), value <= 255 else { return nil }
            bytes.append(UInt8(value))
        }
        return bytes
    }

    /// RFC 4291 2.2 text forms: hex groups, one optional "::", optional trailing dotted IPv4.
    static func parseIPv6(_ text: ArraySlice<UInt8>) -> [UInt8]? {
        guard text.count <= 45 else { return nil }
        guard let gap = doubleColon(in: text) else {
            guard let bytes = groups(text, allowIPv4: true), bytes.count == 16 else { return nil }
            return bytes
        }
        let tail = text[(gap + 2)...]
        guard doubleColon(in: tail) == nil,
              let head = groups(text[..<gap], allowIPv4: false),
              let rest = groups(tail, allowIPv4: true),
              head.count + rest.count <= 14 else { return nil }  // "::" stands for at least one group
        return head + [UInt8](repeating: 0, count: 16 - head.count - rest.count) + rest
    }

    private static func doubleColon(in text: ArraySlice<UInt8>) -> Int? {
        var i = text.startIndex
        while i + 1 < text.endIndex {
            if text[i] == ascii(":") && text[i + 1] == ascii(":") { return i }
            i += 1
        }
        return nil
    }

    private static func groups(_ text: ArraySlice<UInt8>, allowIPv4: Bool) -> [UInt8]? {
        guard !text.isEmpty else { return [] }
        let parts = text.split(separator: ascii(":"), omittingEmptySubsequences: false)
        var bytes: [UInt8] = []
        for (index, part) in parts.enumerated() {
            if allowIPv4 && index == parts.count - 1 && part.contains(ascii(".")) {
                guard let v4 = parseIPv4(part) else { return nil }
                bytes += v4
                continue
            }
            guard (1...4).contains(part.count) else { return nil }
            var value = 0
            for byte in part {
                guard let nibble = hexValue(byte) else { return nil }
                value = value << 4 | nibble
            }
            bytes += [UInt8(value >> 8), UInt8(value & 0xFF)]
        }
        return bytes
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch lower(byte) {
        case 0x30...0x39: Int(byte - 0x30)
        case 0x61...0x66: Int(lower(byte) - 0x61 + 10)
        default: nil
        }
    }
}
