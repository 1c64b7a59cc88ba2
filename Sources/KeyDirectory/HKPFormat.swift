// The HKP machine-readable index (draft-shaw-openpgp-hkp-00 section 5.2; the same format as
// GnuPG's doc/KEYSERVER), what `gpg --search-keys` reads from `op=index&options=mr`:
//
//   info:1:<number of keys>
//   pub:<fingerprint>:<algorithm number>:<key length>:<creation>:<expiration>:<flags>
//   uid:<escaped user ID>:<creation>:<expiration>:<flags>
//
// Times are seconds since 1970; an unknown or absent value leaves its field empty. Flags: r
// (revoked), e (expired); d (disabled) is never set here. A user ID is %-escaped for every byte
// that is not printable 7-bit ASCII, and for ":" and "%".

public enum HKPFormat {
    /// The index of `keys`, LF line ends, one `pub` line and its `uid` lines per key.
    public static func machineReadableIndex(_ keys: [PublicKeyInfo], now: Int64) -> String {
        var out = "info:1:\(keys.count)\n"
        for key in keys {
            out += pubLine(key, now: now)
            for userID in key.userIDs {
                out += "uid:\(escape(userID)):::\n"
            }
        }
        return out
    }

    static func pubLine(_ key: PublicKeyInfo, now: Int64) -> String {
        var flags = ""
        if key.revoked { flags += "r" }
        if key.isExpired(now: now) { flags += "e" }
        let bits = key.bits.map(String.init) ?? ""
        let expires = key.expires.map(String.init) ?? ""
        return "pub:\(key.fingerprint):\(key.algorithmID):\(bits):\(key.created):\(expires):\(flags)\n"
    }

    /// HTTP %-escaping of a user ID for an index line.
    public static func escape(_ userID: String) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in userID.utf8 {
            if byte < 0x20 || byte >= 0x7F || byte == UInt8(ascii: ":") || byte == UInt8(ascii: "%") {
                out += [UInt8(ascii: "%"), digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]]
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
