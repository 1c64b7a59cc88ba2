extension DNSResolver: SPFResolver {
    public func spfTXT(_ name: String) async throws -> [String]? {
        try await txt(name)
    }

    public func spfAddresses(of name: String, ipv6: Bool) async throws -> [[UInt8]] {
        try await query(name, ipv6 ? .aaaa : .a).answers.compactMap { record in
            switch record.data {
            case .a(let bytes) where !ipv6: return bytes
            case .aaaa(let bytes) where ipv6: return bytes
            default: return nil
            }
        }
    }

    public func spfMX(_ name: String) async throws -> [String] {
        try await query(name, .mx).answers.compactMap { record in
            if case .mx(_, let exchange) = record.data, !exchange.isEmpty { return exchange }
            return nil
        }
    }

    /// The `ptr` mechanism is not supported (RFC 7208 5.5: "SHOULD NOT be used"): it never matches.
    public func spfPTR(_ address: [UInt8]) async throws -> [String] { [] }
}
