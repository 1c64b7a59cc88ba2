import Testing
@testable import Gateway

// MARK: - In-memory DNS

/// Records every query so tests can assert what was (not) looked up.
actor QueryLog {
    private(set) var all: [String] = []
    func record(_ entry: String) { all.append(entry) }
}

/// A dictionary-backed zone. Names are case-insensitive; addresses are written as text.
/// Any name (or PTR address text) in `failing` throws, which SPF must treat as a temporary error.
struct Zone: SPFResolver {
    struct Timeout: Error {}

    var txt: [String: [String]] = [:]
    var addresses: [String: [String]] = [:]  // A and AAAA together; filtered by family
    var mx: [String: [String]] = [:]
    var ptr: [String: [String]] = [:]        // keyed by address text
    var failing: Set<String> = []
    let log = QueryLog()

    private func answer<T: Sendable>(_ type: String, _ name: String, _ table: [String: T]) async throws -> T? {
        let key = name.lowercased()
        await log.record("\(type) \(key)")
        if failing.contains(key) { throw Timeout() }
        return table[key]
    }

    func spfTXT(_ name: String) async throws -> [String]? {
        try await answer("TXT", name, txt)
    }

    func spfAddresses(of name: String, ipv6: Bool) async throws -> [[UInt8]] {
        let texts = try await answer(ipv6 ? "AAAA" : "A", name, addresses) ?? []
        return texts.compactMap(SPF.parseIP).filter { $0.count == (ipv6 ? 16 : 4) }
    }

    func spfMX(_ name: String) async throws -> [String] {
        try await answer("MX", name, mx) ?? []
    }

    func spfPTR(_ address: [UInt8]) async throws -> [String] {
        await log.record("PTR")
        for (text, names) in ptr where SPF.parseIP(text) == address {
            if failing.contains(text) { throw Timeout() }
            return names
        }
        return []
    }
}

/// Runs a check against `zone`; `ip` is text.
func check(_ zone: Zone, ip: String = "192.0.2.3", from: String? = "user@example.com",
           helo: String = "mx.example.org") async -> SPFVerdict {
    guard let address = SPF.parseIP(ip) else {
        Issue.record("bad test address \(ip)")
        return SPFVerdict(result: .none, domain: "", scope: "")
    }
    return await SPF.check(ip: address, mailFrom: from, helo: helo, resolver: zone)
}

/// The result of evaluating `record` as the SPF record of example.com.
func result(_ record: String, ip: String = "192.0.2.3", zone: Zone = Zone()) async -> SPFResult {
    var zone = zone
    zone.txt["example.com"] = [record]
    return await check(zone, ip: ip).result
}

// MARK: - Results and record selection

@Suite struct ResultTests {
    @Test func qualifiersAndDefault() async {
        #expect(await result("v=spf1 +all") == .pass)
        #expect(await result("v=spf1 all") == .pass)
        #expect(await result("v=spf1 -all") == .fail)
        #expect(await result("v=spf1 ~all") == .softfail)
        #expect(await result("v=spf1 ?all") == .neutral)
        // 4.7: nothing matched and no redirect -> neutral
        #expect(await result("v=spf1") == .neutral)
        #expect(await result("v=spf1 ip4:10.0.0.1") == .neutral)
        // first match wins
        #expect(await result("v=spf1 -ip4:192.0.2.3 +all") == .fail)
        #expect(await result("v=spf1 all -all") == .pass)
        // extra spaces between and after terms are fine
        #expect(await result("v=spf1   ~all  ") == .softfail)
    }

    @Test func verdictFieldsForPass() async {
        var zone = Zone()
        zone.txt["example.com"] = ["v=spf1 ip4:192.0.2.0/24 -all"]
        let verdict = await check(zone)
        #expect(verdict == SPFVerdict(result: .pass, domain: "example.com", scope: "mailfrom", reason: "matched ip4"))
    }

    @Test func noRecordIsNone() async {
        var zone = Zone()
        #expect(await check(zone) == SPFVerdict(result: .none, domain: "example.com", scope: "mailfrom",
                                                 reason: "no SPF record"))
        zone.txt["example.com"] = ["google-site-verification=abc", "v=spf10 -all", "v=spf1-all", "spf1 -all"]
        #expect(await check(zone).result == .none)
    }

    @Test func versionIsCaseInsensitive() async {
        #expect(await result("V=SpF1 ~all") == .softfail)
    }

    @Test func multipleRecordsArePermerror() async {
        var zone = Zone()
        zone.txt["example.com"] = ["v=spf1 -all", "v=spf1 +all"]
        let verdict = await check(zone)
        #expect(verdict.result == .permerror)
        #expect(verdict.reason == "multiple SPF records")
        // other TXT records next to a single SPF record do not count
        zone.txt["example.com"] = ["v=spf1 -all", "some-verification=1", "v=spf2.0/pra +all"]
        #expect(await check(zone).result == .fail)
    }

    @Test func temperrorFromDNS() async {
        var zone = Zone()
        zone.txt["example.com"] = ["v=spf1 a:flaky.example.net -all"]
        zone.failing = ["example.com"]
        #expect(await check(zone).result == .temperror)

        zone.failing = ["flaky.example.net"]
        let verdict = await check(zone)
        #expect(verdict.result == .temperror)
        #expect(verdict.reason == "DNS error looking up A")

        zone.txt["example.com"] = ["v=spf1 mx -all"]
        zone.mx["example.com"] = ["mx.example.com"]
        zone.failing = ["mx.example.com"]
        #expect(await check(zone).result == .temperror)
        zone.failing = ["example.com"]
        zone.txt["example.com"] = ["v=spf1 exists:%{d} -all"]
        #expect(await check(zone).result == .temperror)
    }
}

// MARK: - ip4 / ip6

@Suite struct AddressMechanismTests {
    @Test func ip4CidrEdges() async {
        let record = "v=spf1 ip4:192.0.2.0/24 -all"
        #expect(await result(record, ip: "192.0.2.0") == .pass)
        #expect(await result(record, ip: "192.0.2.255") == .pass)
        #expect(await result(record, ip: "192.0.3.0") == .fail)
        #expect(await result(record, ip: "192.0.1.255") == .fail)

        #expect(await result("v=spf1 ip4:192.0.2.128/25 -all", ip: "192.0.2.127") == .fail)
        #expect(await result("v=spf1 ip4:192.0.2.128/25 -all", ip: "192.0.2.128") == .pass)
        #expect(await result("v=spf1 ip4:10.0.0.2/31 -all", ip: "10.0.0.3") == .pass)
        #expect(await result("v=spf1 ip4:10.0.0.2/31 -all", ip: "10.0.0.4") == .fail)
        #expect(await result("v=spf1 ip4:192.0.2.3 -all", ip: "192.0.2.3") == .pass)   // default /32
        #expect(await result("v=spf1 ip4:192.0.2.3/32 -all", ip: "192.0.2.4") == .fail)
        #expect(await result("v=spf1 ip4:1.1.1.1/0 -all", ip: "203.0.113.9") == .pass)
        // ip4 never matches an IPv6 client, even with /0
        #expect(await result("v=spf1 ip4:1.1.1.1/0 -all", ip: "2001:db8::1") == .fail)
    }

    @Test(arguments: [
        "v=spf1 ip4:192.0.2.0/33 -all", "v=spf1 ip4:192.0.2.0/032 -all", "v=spf1 ip4:192.0.2.0/ -all",
        "v=spf1 ip4:1.2.3 -all", "v=spf1 ip4:1.2.3.4:8080", "v=spf1 ip4:01.2.3.4", "v=spf1 ip4:256.1.1.1",
        "v=spf1 ip4:1.2.3.4//32", "v=spf1 ip4", "v=spf1 ip4:", "v=spf1 ip6", "v=spf1 ip6::CAFE::BABE",
        "v=spf1 ip6:::1.1.1.1/129", "v=spf1 ip6:::1.1.1.1//33", "v=spf1 ip6:2001:db8::/0128",
        "v=spf1 ip6:1:2:3:4:5:6:7:8:9", "v=spf1 ip6:2001:db8::g",
    ])
    func invalidAddressMechanisms(record: String) async {
        #expect(await result(record) == .permerror)
    }

    @Test func ip6CidrEdges() async {
        let record = "v=spf1 ip6:2001:db8::/32 -all"
        #expect(await result(record, ip: "2001:db8::") == .pass)
        #expect(await result(record, ip: "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff") == .pass)
        #expect(await result(record, ip: "2001:db9::") == .fail)
        #expect(await result(record, ip: "2001:db7:ffff::1") == .fail)

        #expect(await result("v=spf1 ip6:2001:db8::/33 -all", ip: "2001:db8:7fff::1") == .pass)
        #expect(await result("v=spf1 ip6:2001:db8::/33 -all", ip: "2001:db8:8000::") == .fail)
        #expect(await result("v=spf1 ip6:2001:db8::1 -all", ip: "2001:db8::1") == .pass)   // default /128
        #expect(await result("v=spf1 ip6:2001:db8::1/128 -all", ip: "2001:db8::2") == .fail)
        #expect(await result("v=spf1 ip6:::1.1.1.1/0 -all", ip: "2001:db8::2") == .pass)
        // ip6 never matches an IPv4 client, even with /0
        #expect(await result("v=spf1 ip6:::/0 -all", ip: "192.0.2.3") == .fail)
        // an ip4 /33-style length is fine for ip6
        #expect(await result("v=spf1 ip6:CAFE:BABE:8000::/33 -all", ip: "CAFE:BABE:8000::") == .pass)
    }

    @Test func ipv4MappedClientIsIPv4() async {
        let mapped = "::ffff:192.0.2.10"
        #expect(await result("v=spf1 ip4:192.0.2.0/24 -all", ip: mapped) == .pass)
        // 5: a mapped client is IPv4, so ip6 mechanisms (even for the same mapped address) do not match
        #expect(await result("v=spf1 ip6:::ffff:192.0.2.10 -all", ip: mapped) == .fail)
        #expect(await result("v=spf1 ip6:::/0 -all", ip: mapped) == .fail)

        var zone = Zone()
        zone.addresses["example.com"] = ["192.0.2.10"]  // A only, no AAAA
        #expect(await result("v=spf1 a -all", ip: mapped, zone: zone) == .pass)
        zone.addresses["example.com"] = ["2001:db8::10"]
        #expect(await result("v=spf1 a//0 -all", ip: mapped, zone: zone) == .fail)
        #expect(await result("v=spf1 exists:%{v}.%{i}.example.com -all", ip: mapped,
                             zone: hosts(["in-addr.192.0.2.10.example.com"])) == .pass)
    }
}

/// A zone where every name in `names` has the A record 127.0.0.2.
func hosts(_ names: [String]) -> Zone {
    var zone = Zone()
    for name in names { zone.addresses[name.lowercased()] = ["127.0.0.2"] }
    return zone
}

// MARK: - a, mx, ptr, exists

@Suite struct HostMechanismTests {
    var zone: Zone {
        var zone = Zone()
        zone.addresses["example.com"] = ["192.0.2.10", "2001:db8::10"]
        zone.addresses["other.example.net"] = ["198.51.100.1", "2001:db8:1::1"]
        zone.addresses["foo:bar/baz.example.com"] = ["192.0.2.3"]
        zone.mx["example.com"] = ["mx1.example.com", "mx2.example.com."]
        zone.addresses["mx1.example.com"] = ["203.0.113.1"]
        zone.addresses["mx2.example.com"] = ["198.51.100.25", "2001:db8:25::25"]
        return zone
    }

    @Test func aMechanism() async {
        #expect(await result("v=spf1 a -all", ip: "192.0.2.10", zone: zone) == .pass)
        #expect(await result("v=spf1 a -all", ip: "192.0.2.11", zone: zone) == .fail)
        #expect(await result("v=spf1 a -all", ip: "2001:db8::10", zone: zone) == .pass)
        #expect(await result("v=spf1 a/24 -all", ip: "192.0.2.99", zone: zone) == .pass)
        #expect(await result("v=spf1 a/24 -all", ip: "192.0.3.1", zone: zone) == .fail)
        // the ip4 length does not apply to IPv6 clients and vice versa
        #expect(await result("v=spf1 a/0 -all", ip: "2001:db8::11", zone: zone) == .fail)
        #expect(await result("v=spf1 a//0 -all", ip: "192.0.2.11", zone: zone) == .fail)
        #expect(await result("v=spf1 a//0 -all", ip: "2001:db8:ffff::1", zone: zone) == .pass)
    }

    @Test func aWithDomainAndDualCidr() async {
        let record = "v=spf1 a:other.example.net/24//48 -all"
        #expect(await result(record, ip: "198.51.100.200", zone: zone) == .pass)
        #expect(await result(record, ip: "198.51.101.1", zone: zone) == .fail)
        #expect(await result(record, ip: "2001:db8:1:ffff::1", zone: zone) == .pass)
        #expect(await result(record, ip: "2001:db8:2::1", zone: zone) == .fail)
        #expect(await result("v=spf1 a:other.example.net//48 -all", ip: "198.51.100.2", zone: zone) == .fail)
        // a domain-spec may contain ":" and "/" (any visible character but "%")
        #expect(await result("v=spf1 a:foo:bar/baz.example.com -all", zone: zone) == .pass)
        #expect(await result("v=spf1 a:foo:bar/baz.example.com -all", ip: "::ffff:192.0.2.3", zone: zone) == .pass)
        // the toplabel may contain dashes
        var dashed = zone
        dashed.addresses["foo.example.xn--zckzah"] = ["192.0.2.3"]
        #expect(await result("v=spf1 a:foo.example.xn--zckzah -all", zone: dashed) == .pass)
    }

    @Test(arguments: [
        "v=spf1 a/33 -all", "v=spf1 a//129 -all", "v=spf1 a: -all", "v=spf1 a:museum", "v=spf1 a:museum.",
        "v=spf1 a:abc.123", "v=spf1 a:111.222.33.44", "v=spf1 a:example.-com", "v=spf1 a:example.com:8080",
        "v=spf1 a:example.com/", "v=spf1 a:example.com/24/", "v=spf1 a:example.com///24", "v=spf1 a/",
        "v=spf1 mx: -all", "v=spf1 mx/33", "v=spf1 mx//129", "v=spf1 mx:abc.123", "v=spf1 a:foo.example.com\u{0}",
    ])
    func invalidHostMechanisms(record: String) async {
        #expect(await result(record, zone: zone) == .permerror)
    }

    @Test func mxMechanism() async {
        #expect(await result("v=spf1 mx -all", ip: "198.51.100.25", zone: zone) == .pass)
        #expect(await result("v=spf1 mx -all", ip: "203.0.113.1", zone: zone) == .pass)
        #expect(await result("v=spf1 mx -all", ip: "198.51.100.26", zone: zone) == .fail)
        #expect(await result("v=spf1 mx/24 -all", ip: "198.51.100.26", zone: zone) == .pass)
        #expect(await result("v=spf1 mx//48 -all", ip: "2001:db8:25:1::1", zone: zone) == .pass)
        #expect(await result("v=spf1 mx//48 -all", ip: "2001:db8:26::1", zone: zone) == .fail)
        // 5.4: no MX records -> no match (never falls back to the A record)
        #expect(await result("v=spf1 mx:other.example.net -all", ip: "198.51.100.1", zone: zone) == .fail)
    }

    @Test func mxWithDomainAndNullMX() async {
        var zone = zone
        zone.mx["mail.example.net"] = ["mx2.example.com"]
        #expect(await result("v=spf1 mx:mail.example.net/24 -all", ip: "198.51.100.77", zone: zone) == .pass)
        zone.mx["example.com"] = ["."]  // RFC 7505 null MX
        #expect(await result("v=spf1 mx", zone: zone) == .neutral)
    }

    @Test func mxLimit() async {
        var zone = zone
        zone.mx["many.example.com"] = (1...10).map { "mx\($0).many.example.com" }
        for i in 1...11 { zone.addresses["mx\(i).many.example.com"] = ["203.0.113.\(i)"] }
        #expect(await result("v=spf1 mx:many.example.com -all", ip: "203.0.113.10", zone: zone) == .pass)
        // 4.6.4: more than 10 MX names is a permerror
        zone.mx["many.example.com"]?.append("mx11.many.example.com")
        #expect(await result("v=spf1 mx:many.example.com -all", ip: "203.0.113.1", zone: zone) == .permerror)
    }

    @Test func ptrMechanism() async {
        var zone = Zone()
        zone.ptr["192.0.2.3"] = ["mail.example.com.", "spoof.example.org"]
        zone.addresses["mail.example.com"] = ["192.0.2.3"]
        zone.ptr["2001:db8::3"] = ["v6.example.com"]
        zone.addresses["v6.example.com"] = ["2001:db8::3"]
        #expect(await result("v=spf1 ptr -all", zone: zone) == .pass)
        #expect(await result("v=spf1 ptr:EXAMPLE.com -all", zone: zone) == .pass)
        #expect(await result("v=spf1 ptr:ample.com -all", zone: zone) == .fail)
        // spoof.example.org does not resolve back to the client, so it is not validated
        #expect(await result("v=spf1 ptr:example.org -all", zone: zone) == .fail)
        #expect(await result("v=spf1 ptr -all", ip: "2001:db8::3", zone: zone) == .pass)
        #expect(await result("v=spf1 ptr -all", ip: "2001:db8::4", zone: zone) == .fail)
        // 5.5: a failing PTR lookup is no match, not temperror
        zone.failing = ["192.0.2.3"]
        #expect(await result("v=spf1 ptr ?all", zone: zone) == .neutral)
    }

    @Test func ptrNamesBeyondTenAreIgnored() async {
        var zone = Zone()
        zone.ptr["192.0.2.3"] = (1...10).map { "n\($0).other.test" } + ["good.example.com"]
        zone.addresses["good.example.com"] = ["192.0.2.3"]
        #expect(await result("v=spf1 ptr ?all", zone: zone) == .neutral)
        zone.ptr["192.0.2.3"] = (1...9).map { "n\($0).other.test" } + ["good.example.com"]
        #expect(await result("v=spf1 ptr ?all", zone: zone) == .pass)
    }

    @Test func existsMechanism() async {
        let zone = hosts(["3.2.0.192.in-addr.bl.example.net"])
        #expect(await result("v=spf1 -exists:%{ir}.%{v}.bl.example.net +all", zone: zone) == .fail)
        #expect(await result("v=spf1 -exists:%{ir}.%{v}.bl.example.net +all", ip: "192.0.2.4", zone: zone) == .pass)
        // exists always queries A, also for IPv6 clients
        #expect(await result("v=spf1 exists:3.2.0.192.in-addr.bl.example.net -all", ip: "2001:db8::1",
                             zone: zone) == .pass)
        #expect(await result("v=spf1 exists -all") == .permerror)
        #expect(await result("v=spf1 exists: -all") == .permerror)
        #expect(await result("v=spf1 exists:example.com/24 -all") == .permerror)
    }
}

// MARK: - include and redirect

@Suite struct IncludeRedirectTests {
    var zone: Zone {
        var zone = Zone()
        zone.txt["_spf.partner.test"] = ["v=spf1 ip4:192.0.2.0/24 -all"]
        zone.txt["soft.partner.test"] = ["v=spf1 ip4:198.51.100.1 ~all"]
        zone.txt["broken.partner.test"] = ["v=spf1 ip4:192.0.2.0/24 bogus -all"]
        zone.txt["nospf.partner.test"] = ["hello"]
        zone.txt["flaky.partner.test"] = ["v=spf1 +all"]
        zone.failing = ["flaky.partner.test"]
        return zone
    }

    @Test func includePass() async {
        #expect(await result("v=spf1 include:_spf.partner.test -all", zone: zone) == .pass)
        // the include's qualifier decides the result when it matches
        #expect(await result("v=spf1 -include:_spf.partner.test +all", zone: zone) == .fail)
    }

    @Test func includeFailIsNoMatch() async {
        // the included record fails, so include does not match and evaluation continues
        #expect(await result("v=spf1 include:_spf.partner.test ~all", ip: "203.0.113.5", zone: zone) == .softfail)
        #expect(await result("v=spf1 include:soft.partner.test ?all", zone: zone) == .neutral)
        #expect(await result("v=spf1 -include:soft.partner.test +all", zone: zone) == .pass)
    }

    @Test func includeNoneIsPermerror() async {
        #expect(await result("v=spf1 include:nospf.partner.test +all", zone: zone) == .permerror)
        #expect(await result("v=spf1 include:missing.partner.test +all", zone: zone) == .permerror)
        #expect(await result("v=spf1 include:%{l} +all", zone: zone) == .permerror)  // single label: none
    }

    @Test func includeErrorsPropagate() async {
        #expect(await result("v=spf1 include:broken.partner.test +all", zone: zone) == .permerror)
        #expect(await result("v=spf1 include:flaky.partner.test +all", zone: zone) == .temperror)
    }

    @Test(arguments: ["v=spf1 include -all", "v=spf1 include: -all", "v=spf1 include:_spf.partner.test/24 -all"])
    func includeSyntax(record: String) async {
        #expect(await result(record, zone: zone) == .permerror)
    }

    @Test func redirect() async {
        #expect(await result("v=spf1 redirect=_spf.partner.test", zone: zone) == .pass)
        #expect(await result("v=spf1 redirect=_spf.partner.test", ip: "203.0.113.5", zone: zone) == .fail)
        #expect(await result("v=spf1 ip4:203.0.113.9 redirect=soft.partner.test", ip: "203.0.113.5",
                             zone: zone) == .softfail)
        // the redirected verdict keeps the original domain
        var zone = zone
        zone.txt["example.com"] = ["v=spf1 redirect=_spf.partner.test"]
        #expect(await check(zone).domain == "example.com")
    }

    @Test func redirectIgnoredWhenAMechanismMatched() async {
        var zone = zone
        zone.txt["example.com"] = ["v=spf1 redirect=_spf.partner.test ip4:203.0.113.5"]
        let verdict = await check(zone, ip: "203.0.113.5")
        #expect(verdict.result == .pass)
        #expect(await !zone.log.all.contains("TXT _spf.partner.test"))
        // 6.1: with "all" in the record, redirect never applies
        #expect(await result("v=spf1 redirect=_spf.partner.test ~all", zone: zone) == .softfail)
    }

    @Test func redirectErrors() async {
        // 6.1: a redirect target without a record is a permerror, not none
        #expect(await result("v=spf1 redirect=missing.partner.test", zone: zone) == .permerror)
        #expect(await result("v=spf1 redirect=nospf.partner.test", zone: zone) == .permerror)
        #expect(await result("v=spf1 redirect=flaky.partner.test", zone: zone) == .temperror)
        #expect(await result("v=spf1 redirect=_spf.partner.test redirect=_spf.partner.test", zone: zone) == .permerror)
        #expect(await result("v=spf1 ?all redirect=", zone: zone) == .permerror)
        #expect(await result("v=spf1 redirect=-all ?all", zone: zone) == .permerror)
        // redirect is a modifier, not a mechanism
        #expect(await result("v=spf1 ip4:192.0.2.3 redirect:_spf.partner.test", zone: zone) == .permerror)
    }
}

// MARK: - Limits (4.6.4)

@Suite struct LimitTests {
    /// A record with `count` "a:hN.limits.test" mechanisms (none matching), then "-all".
    func zone(aMechanisms count: Int) -> (Zone, String) {
        var zone = Zone()
        for i in 1...max(count, 1) { zone.addresses["h\(i).limits.test"] = ["203.0.113.\(i)"] }
        let terms = (0..<count).map { "a:h\($0 + 1).limits.test" }.joined(separator: " ")
        return (zone, "v=spf1 \(terms) ip4:198.51.100.0/24 -all")
    }

    @Test func tenLookupsAreFine() async {
        let (zone, record) = zone(aMechanisms: 10)
        #expect(await result(record, zone: zone) == .fail)
        #expect(await result(record, ip: "198.51.100.1", zone: zone) == .pass)
    }

    @Test func elevenLookupsArePermerror() async {
        var (zone, record) = zone(aMechanisms: 11)
        zone.txt["example.com"] = [record]
        let verdict = await check(zone)
        #expect(verdict.result == .permerror)
        #expect(verdict.reason == "more than 10 DNS lookups")
        // counted during evaluation: a match before the 11th term is fine
        #expect(await result(record, ip: "203.0.113.10", zone: zone) == .pass)
    }

    @Test func lookupsInsideIncludesCount() async {
        var (zone, _) = zone(aMechanisms: 9)
        zone.txt["inc.limits.test"] = ["v=spf1 a:h1.limits.test a:h2.limits.test a:h3.limits.test"]
        // 1 include + 3 inside + 6 = 10
        #expect(await result("v=spf1 include:inc.limits.test a:h4.limits.test a:h5.limits.test a:h6.limits.test "
                             + "a:h7.limits.test a:h8.limits.test a:h9.limits.test -all", zone: zone) == .fail)
        // one more is 11
        #expect(await result("v=spf1 include:inc.limits.test a:h4.limits.test a:h5.limits.test a:h6.limits.test "
                             + "a:h7.limits.test a:h8.limits.test a:h9.limits.test mx:h1.limits.test -all",
                             zone: zone) == .permerror)
    }

    @Test func nonDNSTermsDoNotCount() async {
        let (zone, _) = zone(aMechanisms: 10)
        let terms = (1...10).map { "a:h\($0).limits.test" }.joined(separator: " ")
        let ips = (1...20).map { "ip4:10.0.0.\($0)" }.joined(separator: " ")
        #expect(await result("v=spf1 \(ips) \(terms) -all exp=explain.example.com", zone: zone) == .fail)
    }

    @Test func includeAndRedirectLoopsArePermerror() async {
        var zone = Zone()
        zone.txt["loop1.test"] = ["v=spf1 include:loop2.test"]
        zone.txt["loop2.test"] = ["v=spf1 include:loop1.test"]
        zone.txt["self.test"] = ["v=spf1 ip4:10.1.1.1 redirect=self.test"]
        #expect(await result("v=spf1 include:loop1.test -all", zone: zone) == .permerror)
        #expect(await result("v=spf1 redirect=self.test", zone: zone) == .permerror)
    }

    @Test func voidLookups() async {
        let two = "v=spf1 a:gone1.example.net mx:gone2.example.net ip4:198.51.100.1 -all"
        #expect(await result(two) == .fail)
        #expect(await result(two, ip: "198.51.100.1") == .pass)
        let three = "v=spf1 a:gone1.example.net mx:gone2.example.net exists:gone3.example.net -all"
        var zone = Zone()
        zone.txt["example.com"] = [three]
        let verdict = await check(zone)
        #expect(verdict.result == .permerror)
        #expect(verdict.reason == "more than 2 void lookups")
        // void lookups inside an include count toward the same limit
        zone.txt["example.com"] = ["v=spf1 a:gone1.example.net a:gone2.example.net include:inc.example.net -all"]
        zone.txt["inc.example.net"] = ["v=spf1 a:gone3.example.net"]
        #expect(await check(zone).result == .permerror)
    }
}

// MARK: - Modifiers and syntax

@Suite struct SyntaxTests {
    @Test func explanationIsIgnoredAndNotFetched() async {
        var zone = Zone()
        zone.txt["example.com"] = ["v=spf1 -all exp=explain.%{d}"]
        zone.txt["explain.example.com"] = ["You are not %{i}"]
        #expect(await check(zone).result == .fail)
        #expect(await zone.log.all == ["TXT example.com"])
    }

    @Test(arguments: [
        "v=spf1 exp= -all", "v=spf1 exp=-all", "v=spf1 -all exp=a.example.com exp=b.example.com",
        "v=spf1 -all exp=%{r}.example.com", "v=spf1 -all exp=%{c}.example.com",
    ])
    func explanationSyntaxErrors(record: String) async {
        #expect(await result(record) == .permerror)
    }

    @Test func unknownModifiersAreIgnored() async {
        #expect(await result("v=spf1 moo.cow-far_out=man:dog/cat ip4:192.0.2.3 -all") == .pass)
        #expect(await result("v=spf1 default=pass") == .neutral)
        #expect(await result("v=spf1 -all x-note=%{c}%{r}%{t}") == .fail)
        #expect(await result("v=spf1 v=spf1 ~all") == .softfail)
    }

    @Test(arguments: [
        "v=spf1 -all foo=%abc", "v=spf1 1up=foo", "v=spf1 =all", "v=spf1 moo.cow/far_out=man:dog/cat -all",
        "v=spf1 moo.cow:far_out=man:dog/cat -all", "v=spf1 -all foo=bar\u{7F}",
    ])
    func badModifierSyntax(record: String) async {
        #expect(await result(record) == .permerror)
    }

    @Test func unknownMechanismIsPermerror() async {
        let verdict = await {
            var zone = Zone()
            zone.txt["example.com"] = ["v=spf1 foo:bar.example.com -all"]
            return await check(zone)
        }()
        #expect(verdict.result == .permerror)
        #expect(verdict.reason == "unknown mechanism")
        // 4.6: errors anywhere in the record count, even after a matching mechanism
        #expect(await result("v=spf1 ip4:192.0.2.3 -all moo") == .permerror)
    }

    @Test(arguments: [
        "v=spf1 -all/8", "v=spf1 -all.", "v=spf1 -all:foobar", "v=spf1 ptr/0 -all", "v=spf1 ptr: -all",
        "v=spf1 +-all", "v=spf1 !all", "v=spf1 a:%{a}.example.com -all", "v=spf1 -exists:%(ir).sbl.example.com",
        "v=spf1 a:%{d0}.example.com", "v=spf1 a:%{d}. -all", "v=spf1 a:%{d", "v=spf1 a:% -all",
        "v=spf1 a:example.com\u{96}all", "v=spf1 -all\tip4:1.2.3.4", "v=spf1 ~all ç",
    ])
    func syntaxErrors(record: String) async {
        #expect(await result(record) == .permerror)
    }

    @Test func malformedTargetNamesDoNotMatch() async {
        // 4.3 by analogy: a target that cannot be a DNS name is treated as non-existent
        #expect(await result("v=spf1 a:mail.example...com -all") == .fail)
        #expect(await result("v=spf1 a:\(String(repeating: "a", count: 64)).example.com -all") == .fail)
        // the invalid HELO name is URL-escaped by %{H}, queried, and simply not found
        var zone = Zone()
        zone.txt["example.com"] = ["v=spf1 a:%{H} -all"]
        #expect(await check(zone, helo: "JUMPIN' JUPITER").result == .fail)
    }
}

// MARK: - Macros (7)

@Suite struct MacroTests {
    /// The example context of RFC 7208 7.4.
    func context(ipv6: Bool = false) -> MacroContext {
        MacroContext(localPart: "strong-bad", senderDomain: "email.example.com", domain: "email.example.com",
                     ip: SPF.parseIP(ipv6 ? "2001:db8::cb01" : "192.0.2.3") ?? [], helo: "mx.example.org")
    }

    @Test(arguments: [
        ("%{s}", "strong-bad@email.example.com"),
        ("%{o}", "email.example.com"),
        ("%{d}", "email.example.com"),
        ("%{d4}", "email.example.com"),
        ("%{d3}", "email.example.com"),
        ("%{d2}", "example.com"),
        ("%{d1}", "com"),
        ("%{dr}", "com.example.email"),
        ("%{d2r}", "example.email"),
        ("%{l}", "strong-bad"),
        ("%{l-}", "strong.bad"),
        ("%{lr}", "strong-bad"),
        ("%{lr-}", "bad.strong"),
        ("%{l1r-}", "strong"),
        ("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com"),
        ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
        ("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com"),
        ("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com"),
        ("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net"),
    ])
    func rfcExamplesIPv4(macro: String, expansion: String) throws {
        #expect(try SPF.expand(macro, context()) == expansion)
    }

    @Test func rfcExampleIPv6() throws {
        #expect(try SPF.expand("%{ir}.%{v}._spf.%{d2}", context(ipv6: true))
            == "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com")
        #expect(try SPF.expand("%{i}", context(ipv6: true))
            == "2.0.0.1.0.d.b.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.c.b.0.1")
    }

    @Test func otherLettersAndEscapes() throws {
        let ctx = context()
        #expect(try SPF.expand("%{i}", ctx) == "192.0.2.3")
        #expect(try SPF.expand("%{h}", ctx) == "mx.example.org")
        #expect(try SPF.expand("%{p}", ctx) == "unknown")
        #expect(try SPF.expand("%{S}", ctx) == "strong-bad%40email.example.com")
        #expect(try SPF.expand("%{L}", MacroContext(localPart: "jack&jill=up", senderDomain: "e8.example.com",
                                                    domain: "e8.example.com", ip: [1, 2, 3, 4], helo: "h.test"))
            == "jack%26jill%3Dup")
        #expect(try SPF.expand("macro%%percent%_%_space%-url-space", ctx) == "macro%percent  space%20url-space")
        #expect(try SPF.expand("%{d2R}", ctx) == "example.email")   // "R" transformer case-insensitive
        #expect(try SPF.expand("%{d999999999999999999999999}", ctx) == "email.example.com")  // huge digit: no overflow
        #expect(try SPF.expand("%{l+-,/_=}", MacroContext(localPart: "a+b-c,d/e_f=g", senderDomain: "x.test",
                                                         domain: "x.test", ip: [1, 2, 3, 4], helo: "h.test"))
            == "a.b.c.d.e.f.g")
        #expect(try SPF.expand("%{o.}", ctx) == "email.example.com")
    }

    @Test(arguments: ["%", "%x", "%{", "%{d", "%{x}", "%{d0}", "%{dr2}", "%{d2r!}", "%{c}", "%{r}", "%{t}", "a b"])
    func badMacroSyntax(text: String) {
        #expect(throws: SPFAbort.self) { try SPF.expand(text, context()) }
    }

    @Test func macrosInEvaluation() async {
        var zone = hosts(["1.2.3.4.gladstone.philip.user.example.com", "bad.strong.lp._spf.example.com"])
        zone.txt["example.com"] = ["v=spf1 exists:%{i}.%{l2r-}.user.%{d2} -all"]
        #expect(await check(zone, ip: "1.2.3.4", from: "philip-gladstone-test@example.com").result == .pass)
        zone.txt["email.example.com"] = ["v=spf1 exists:%{lr-}.lp._spf.%{d2} -all"]
        #expect(await check(zone, from: "strong-bad@email.example.com").result == .pass)
        #expect(await check(zone, from: "strong-good@email.example.com").result == .fail)
    }

    @Test func expandedNamesAreTruncatedTo253() async {
        // 7.3: labels are removed from the left until the name fits in 253 characters
        let local = (1...40).map { _ in "abcdefgh" }.joined(separator: ".")
        var zone = Zone()
        zone.txt["example.com"] = ["v=spf1 exists:%{l}.x.example.com -all"]
        let full = local + ".x.example.com"
        var truncated = Substring(full)
        while truncated.utf8.count > 253, let dot = truncated.firstIndex(of: ".") {
            truncated = truncated[truncated.index(after: dot)...]
        }
        zone.addresses[String(truncated)] = ["127.0.0.2"]
        #expect(full.utf8.count > 253 && truncated.utf8.count <= 253)
        #expect(await check(zone, from: local + "@example.com").result == .pass)
    }
}

// MARK: - Identities (2.4, 4.3)

@Suite struct IdentityTests {
    @Test func nullSenderUsesHelo() async {
        var zone = hosts(["postmaster.mx.example.org.check.test"])
        zone.txt["mx.example.org"] = ["v=spf1 exists:%{l}.%{o}.check.test -all"]
        for sender: String? in [nil, "", "<>"] {
            let verdict = await check(zone, from: sender, helo: "mx.example.org")
            #expect(verdict == SPFVerdict(result: .pass, domain: "mx.example.org", scope: "helo",
                                          reason: "matched exists"))
        }
        // %{s} is postmaster@<helo>
        zone.txt["mx.example.org"] = ["v=spf1 exists:%{s}.check.test -all"]
        zone.addresses["postmaster@mx.example.org.check.test"] = ["127.0.0.2"]
        #expect(await check(zone, from: nil, helo: "mx.example.org").result == .pass)
    }

    @Test func missingLocalPartIsPostmaster() async {
        var zone = hosts(["postmaster.check.test"])
        zone.txt["example.net"] = ["v=spf1 exists:%{l}.check.test -all"]
        #expect(await check(zone, from: "@example.net").result == .pass)
        #expect(await check(zone, from: "<@example.net>").result == .pass)
        #expect(await check(zone, from: "bob@example.net").result == .fail)
    }

    @Test func malformedDomainsAreNone() async {
        var zone = Zone()
        zone.txt["localhost"] = ["v=spf1 -all"]
        let long = String(repeating: "a", count: 64)
        let cases: [(String?, String)] = [
            ("user@localhost", "mx.example.org"),            // single label
            ("lyme.eater@\(long).example.com", "h.test"),     // label > 63
            ("lyme.eater@A...example.com", "h.test"),        // empty label
            ("foo@[1.2.3.5]", "h.test"),                     // address literal
            (nil, "[1.2.3.5]"),
            (nil, "A2345678"),
            (nil, ""),
            ("user@exa mple.com", "h.test"),
        ]
        for (from, helo) in cases {
            let verdict = await check(zone, from: from, helo: helo)
            #expect(verdict.result == .none, "\(String(describing: from)) / \(helo)")
            #expect(verdict.reason == "malformed domain")
        }
        #expect(await zone.log.all.isEmpty)
    }

    @Test func longestValidLabelAndTrailingDot() async {
        let label = String(repeating: "a", count: 63)
        var zone = Zone()
        zone.txt["\(label).example.com"] = ["v=spf1 -all"]
        zone.txt["example.com"] = ["v=spf1 -all"]
        #expect(await check(zone, from: "u@\(label).example.com").result == .fail)
        #expect(await check(zone, from: "u@example.com.").result == .fail)
    }

    @Test func invalidClientAddress() async {
        var zone = Zone()
        zone.txt["example.com"] = ["v=spf1 +all"]
        let verdict = await SPF.check(ip: [1, 2, 3], mailFrom: "u@example.com", helo: "h", resolver: zone)
        #expect(verdict.result == .none)
        #expect(verdict.reason == "invalid client address")
    }
}

// MARK: - Authentication-Results

@Suite struct AuthenticationResultTests {
    @Test func formats() {
        #expect(SPFVerdict(result: .pass, domain: "example.com", scope: "mailfrom").authenticationResult
            == "spf=pass smtp.mailfrom=example.com")
        // PRIV-6: the HELO name is never written, so a HELO verdict has no property.
        #expect(SPFVerdict(result: .none, domain: "mx.example.com", scope: "helo").authenticationResult == "spf=none")
        #expect(SPFVerdict(result: .permerror, domain: "x.test", scope: "mailfrom", reason: "syntax error")
            .authenticationResult == "spf=permerror (syntax error) smtp.mailfrom=x.test")
        // hostile text cannot break out of the comment or the value
        #expect(SPFVerdict(result: .none, domain: "a b\"c\\d;e", scope: "mailfrom", reason: "x) (y\\z\r\n")
            .authenticationResult == #"spf=none (x yz) smtp.mailfrom="a b\"c\\d;e""#)
        #expect(SPFVerdict(result: .pass, domain: "", scope: "helo", reason: "matched a").authenticationResult == "spf=pass (matched a)")
    }

    @Test func fromEvaluation() async {
        var zone = Zone()
        zone.txt["example.com"] = ["v=spf1 ip4:192.0.2.0/24 -all"]
        #expect(await check(zone).authenticationResult == "spf=pass (matched ip4) smtp.mailfrom=example.com")
        #expect(await check(zone, ip: "198.51.100.1").authenticationResult
            == "spf=fail (matched all) smtp.mailfrom=example.com")
        zone.txt["example.com"] = ["v=spf1 ip4:192.0.2.0/24 -all bogus"]
        #expect(await check(zone).authenticationResult
            == "spf=permerror (unknown mechanism) smtp.mailfrom=example.com")
        #expect(await check(zone, from: nil, helo: "mx.example.com").authenticationResult
            == "spf=none (no SPF record)")
    }
}

// MARK: - parseIP

@Suite struct ParseIPTests {
    @Test func valid() {
        #expect(SPF.parseIP("1.2.3.4") == [1, 2, 3, 4])
        #expect(SPF.parseIP("255.255.255.0") == [255, 255, 255, 0])
        #expect(SPF.parseIP("::1") == [UInt8](repeating: 0, count: 15) + [1])
        #expect(SPF.parseIP("::") == [UInt8](repeating: 0, count: 16))
        #expect(SPF.parseIP("2001:db8::1") == [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1])
        #expect(SPF.parseIP("::ffff:1.2.3.4") == [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 1, 2, 3, 4])
        #expect(SPF.parseIP("1:2:3:4:5:6:7::") == [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 0])
        #expect(SPF.parseIP("FFFF:0:0:0:0:0:0:1") == [0xff, 0xff] + [UInt8](repeating: 0, count: 13) + [1])
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.-1", " 1.2.3.4", "1.2.3.4 ", ":::", "1::2::3",
        ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1::2:3:4:5:6:7:8", "12345::", "g::", "::1.2.3", "1.2.3.4::",
        "fe80::1%eth0", "[::1]", "::ffff:1.2.3.4:5",
    ])
    func invalid(text: String) {
        #expect(SPF.parseIP(text) == nil)
    }
}

// MARK: - Property test

/// Deterministic SplitMix64 so failures reproduce.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct PropertyTests {
    static let tokens = [
        "all", "-all", "~all", "?all", "+all", "a", "a/24", "a//64", "a:%{d}", "mx", "mx/0", "mx:m.fuzz.test",
        "ptr", "ptr:fuzz.test", "ip4:192.0.2.0/24", "ip4:0.0.0.0/0", "ip6:::/0", "ip6:2001:db8::/32",
        "include:i1.fuzz.test", "include:i2.fuzz.test", "include:%{d}", "exists:%{i}.%{d}", "exists:%{l}.x.test",
        "redirect=i1.fuzz.test", "redirect=%{d}", "exp=e.%{d}", "foo=bar", "%{ir}", "%{d2r-}", "%%", "%", "/",
        "//", ":", "=", "a:", "ip4:", "ip6:", "%{p}", "%{h}", "%{v}.%{s}", "v=spf1",
    ]

    static func garbage(_ rng: inout SeededGenerator) -> String {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0:  // printable ASCII
            return String(decoding: (0..<Int.random(in: 0...12, using: &rng)).map { _ in
                UInt8.random(in: 0x21...0x7E, using: &rng)
            }, as: UTF8.self)
        case 1:  // arbitrary bytes (invalid UTF-8 becomes U+FFFD)
            return String(decoding: (0..<Int.random(in: 0...12, using: &rng)).map { _ in
                UInt8.random(in: 0...255, using: &rng)
            }, as: UTF8.self)
        default:  // a token, maybe with a qualifier or a mangled tail
            var token = tokens.randomElement(using: &rng) ?? "all"
            if Bool.random(using: &rng) { token = ["+", "-", "~", "?", ""].randomElement(using: &rng)! + token }
            if Int.random(in: 0..<4, using: &rng) == 0 {
                token += ["/33", "//129", ".", ":x", "%{", "0", "/"].randomElement(using: &rng)!
            }
            return token
        }
    }

    static func record(_ rng: inout SeededGenerator) -> String {
        let terms = (0..<Int.random(in: 0...8, using: &rng)).map { _ in garbage(&rng) }
        let prefix = Int.random(in: 0..<10, using: &rng) == 0 ? garbage(&rng) : "v=spf1"
        return ([prefix] + terms).joined(separator: String(repeating: " ", count: Int.random(in: 1...2, using: &rng)))
    }

    @Test func randomRecordsNeverCrash() async {
        var rng = SeededGenerator(state: 7208)
        var seen: Set<SPFResult> = []
        for _ in 0..<2_000 {
            var zone = Zone()
            zone.txt["fuzz.test"] = [Self.record(&rng)] + (Bool.random(using: &rng) ? [Self.record(&rng)] : [])
            zone.txt["i1.fuzz.test"] = [Self.record(&rng)]
            zone.txt["i2.fuzz.test"] = [Self.record(&rng)]
            zone.addresses["fuzz.test"] = ["192.0.2.3", "2001:db8::3"]
            zone.mx["m.fuzz.test"] = ["fuzz.test"]
            zone.ptr["192.0.2.3"] = ["fuzz.test"]
            if Int.random(in: 0..<20, using: &rng) == 0 { zone.failing = ["i1.fuzz.test"] }
            let ip = Bool.random(using: &rng) ? "192.0.2.3" : "2001:db8::3"
            let from: String? = Bool.random(using: &rng) ? "someone@fuzz.test" : nil
            let verdict = await check(zone, ip: ip, from: from, helo: "fuzz.test")
            seen.insert(verdict.result)
            #expect(verdict.domain == "fuzz.test")
            #expect(!(verdict.reason ?? "").contains(ip), "reason must not leak the client IP")
            #expect(verdict.authenticationResult.hasPrefix("spf=\(verdict.result.rawValue)"))
        }
        // the generator should reach the interesting outcomes, not just permerror
        #expect(seen.isSuperset(of: [.pass, .fail, .neutral, .permerror, .none]))
    }

    @Test func randomMacroStringsAndAddressesNeverCrash() {
        var rng = SeededGenerator(state: 4408)
        let ctx = MacroContext(localPart: "a.b-c", senderDomain: "x.test", domain: "x.test",
                               ip: [192, 0, 2, 3], helo: "h.test")
        for _ in 0..<2_000 {
            let text = Self.garbage(&rng) + Self.garbage(&rng)
            _ = try? SPF.expand(text, ctx)
            _ = SPF.parseIP(text)
            _ = SPF.parseIP(String(text.filter { $0.isHexDigit || $0 == ":" || $0 == "." }))
        }
    }
}
