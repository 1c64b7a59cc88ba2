import Foundation
import HTTPTypes
import Hummingbird
import KeyDirectory
import MailCore
import NIOCore
import Store

/// The public key book on the core's web listener (KEYS-2, KEYS-3): a search page, HKP
/// (draft-shaw-openpgp-hkp: `/pks/lookup` with `op=get|index|vindex`, `options=mr` as gpg asks)
/// and WKD's direct method (draft-koch-openpgp-webkey-service 3.1). Only keys of accounts that
/// chose to be listed are found; publishing needs a login (the account page, or the operator's
/// `postern keys import`).
public struct KeyBookPages: Sendable {
    let book: KeyBook
    let domain: String
    let pages: PageRenderer
    let workers: @Sendable (@escaping @Sendable () throws -> [StoredKey]) async throws -> [StoredKey]
    let now: @Sendable () -> Double

    /// What a lookup asks for, read from HKP's `search` or the page's box: the readings to try, in
    /// order. Hex with `0x` (as gpg sends it) is a fingerprint or key id; bare hex of those lengths
    /// may also be an account name (`cafe1234`), so both are tried.
    static func searches(_ text: String, domain: String) -> [KeyBook.Search] {
        var query = text.trimmingCharacters(in: .whitespaces)
        guard !query.isEmpty, query.count <= 320 else { return [] }
        // "Name <addr>" as some clients send it.
        if let open = query.lastIndex(of: "<"), let close = query.lastIndex(of: ">"), open < close {
            query = String(query[query.index(after: open)..<close])
        }
        let lower = query.lowercased()
        let prefixed = lower.hasPrefix("0x")
        let hex = prefixed ? String(lower.dropFirst(2)) : lower
        var readings: [KeyBook.Search] = []
        if !hex.isEmpty, hex.allSatisfy(\.isHexDigit) {
            switch hex.count {
            case 40, 64: readings.append(.fingerprint(hex.uppercased()))
            case 16, 8: readings.append(.keyID(hex.uppercased()))
            default: break
            }
        }
        if prefixed { return readings }
        if let at = lower.lastIndex(of: "@") {
            guard lower[lower.index(after: at)...] == domain else { return readings }
            return readings + [.account(String(lower[..<at]))]
        }
        if lower.allSatisfy({ $0.isLetter || $0.isNumber || "._-".contains($0) }) { readings.append(.account(lower)) }
        return readings
    }

    func find(_ searches: [KeyBook.Search]) async throws -> [StoredKey] {
        var found: [StoredKey] = []
        for search in searches {
            for key in try await workers({ [book] in try book.lookup(search) }) where !found.contains(where: { $0.fingerprint == key.fingerprint }) {
                found.append(key)
            }
        }
        return found
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/keys") { request, _ in try await searchPage(request) }
        router.get("/pks/lookup") { request, _ in try await lookup(request) }
        // HKP 4: submission is not offered — a key is published by its owner, logged in.
        router.post("/pks/add") { _, _ in
            Self.text("Keys are published by their owners on the account page (log in, then upload): this key book takes no anonymous submissions.\n",
                 status: .forbidden)
        }
        router.get("/.well-known/openpgpkey/policy") { _, _ in Self.text("", status: .ok) }
        router.get("/.well-known/openpgpkey/hu/:hash") { request, context in
            try await webKey(hash: context.parameters.get("hash") ?? "", local: request.uri.queryParameters["l"].map(String.init))
        }
    }

    // MARK: HKP

    func lookup(_ request: Request) async throws -> Response {
        let query = request.uri.queryParameters
        let op = query["op"].map(String.init) ?? "get"
        let machineReadable = query["options"].map { $0.split(separator: ",").contains("mr") } ?? false
        let text = query["search"].map(String.init) ?? ""
        let searches = Self.searches(text, domain: domain)
        guard !searches.isEmpty else {
            return Self.text("search: give an address at \(domain), a fingerprint or a key id\n", status: .badRequest)
        }
        let keys = try await find(searches)
        switch op {
        case "get":
            guard !keys.isEmpty else { return Self.text("No keys found\n", status: .notFound) }
            var headers = SecurityPolicy.download.headers
            headers[.contentType] = "application/pgp-keys"
            let body = keys.map { Armor.encode($0.key) }.joined(separator: "\n")
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
        case "index", "vindex":
            guard !keys.isEmpty else { return Self.text("No keys found\n", status: .notFound) }
            if machineReadable {
                let infos = keys.compactMap { try? KeyPublication.inspect($0.key) }
                return Self.text(HKPFormat.machineReadableIndex(infos, now: Int64(now())), status: .ok)
            }
            return pages.page("keys", ["pageTitle": "Key book", "search": text, "domain": domain, "searched": true,
                                        "results": keys.map(row), "hasResults": true])
        default:
            return Self.text("op=\(op) is not offered: use get, index or vindex\n", status: .notImplemented)
        }
    }

    // MARK: the search page

    func searchPage(_ request: Request) async throws -> Response {
        let text = request.uri.queryParameters["search"].map(String.init) ?? ""
        var context: [String: Any] = ["pageTitle": "Key book", "search": text, "domain": domain]
        if !text.isEmpty {
            context["searched"] = true
            let searches = Self.searches(text, domain: domain)
            if !searches.isEmpty {
                let keys = try await find(searches)
                context["results"] = keys.map(row)
                context["hasResults"] = !keys.isEmpty
            } else {
                context["error"] = "Search for an address at \(domain), a fingerprint (40 or 64 hex digits) or a key id (16 hex digits)."
            }
        }
        return pages.page("keys", context)
    }

    func row(_ key: StoredKey) -> [String: Any] {
        var row: [String: Any] = [
            "address": "\(key.accountName)@\(domain)",
            "userID": key.userID,
            "fingerprint": Self.grouped(key.fingerprint),
            "algorithm": Self.algorithmText(key),
            "created": Self.day(key.created),
            "href": "/pks/lookup?op=get&options=mr&search=0x\(key.fingerprint)",
        ]
        if let expires = key.expires { row["expires"] = Self.day(expires) }
        return row
    }

    /// "EdDSA (legacy) 255 (Ed25519)", "RSA 2048": the stored key read once more for its curve,
    /// else the stored algorithm number and size.
    static func algorithmText(_ key: StoredKey) -> String {
        guard let info = try? KeyPublication.inspect(key.key) else {
            return PublicKeyAlgorithm.name(UInt8(clamping: key.algorithm)) + (key.bits.map { " \($0)" } ?? "")
        }
        return info.algorithm + (info.bits.map { " \($0)" } ?? "") + (info.curve.map { " (\($0))" } ?? "")
    }

    static func grouped(_ hex: String) -> String {
        stride(from: 0, to: hex.count, by: 4).map { offset in
            let start = hex.index(hex.startIndex, offsetBy: offset)
            return String(hex[start..<hex.index(start, offsetBy: min(4, hex.count - offset))])
        }.joined(separator: " ")
    }

    static func day(_ seconds: Int64) -> String {
        let (year, month, day) = RFC5322Date.civil(fromDays: seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400)
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(year)-\(two(month))-\(two(day))"
    }

    // MARK: WKD

    /// The direct method: `hu/<z-base-32 SHA-1 of the lower-cased local part>`, the binary key.
    func webKey(hash: String, local: String?) async throws -> Response {
        guard hash.count == 32, hash.allSatisfy({ "ybndrfg8ejkmcpqxot1uwisza345h769".contains($0) }) else {
            return Self.text("Not a WKD hash\n", status: .notFound)
        }
        var keys: [StoredKey] = []
        if let local, WKD.hash(localPart: local) == hash {
            keys = try await find([.account(local.lowercased())])
        } else {
            // Without `l`, the listed keys are few enough to hash each name.
            keys = try await workers { [book] in try book.all().filter(\.listed).map(\.key) }
                .filter { WKD.hash(localPart: $0.accountName) == hash }
        }
        guard let key = keys.first else { return Self.text("No key for this address\n", status: .notFound) }
        var headers = SecurityPolicy.download.headers
        headers[.contentType] = "application/octet-stream"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: key.key)))
    }

    static func text(_ body: String, status: HTTPResponse.Status) -> Response {
        var headers = SecurityPolicy.download.headers
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A key uploaded by its owner, checked and cut to the account's address (KEYS-1).
    public static func prepare(_ upload: [UInt8], account: String, domain: String, now: Int64) throws(KeyRefusal) -> StoredKey {
        let prepared = try KeyPublication.prepare(upload: upload, address: "\(account)@\(domain)", now: now)
        let info = prepared.info
        return StoredKey(accountName: account, fingerprint: info.fingerprint, keyIDs: [info.keyID] + info.subkeys.map(\.keyID),
                         algorithm: Int(info.algorithmID), bits: info.bits, created: info.created, expires: info.expires,
                         userID: info.userIDs.first ?? "\(account)@\(domain)", key: prepared.binary)
    }
}

extension KeyRefusal: PageProblem {
    public var status: HTTPResponse.Status { .badRequest }
}
