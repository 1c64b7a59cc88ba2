/// Strict base64 (RFC 4648 section 4) for SASL responses: no whitespace, no line breaks, correct
/// padding. RFC 5034 section 4: a response that is not valid base64 is rejected with -ERR.
enum SASLBase64 {
    /// The decoded bytes, or `nil` when `text` is not canonical padded base64.
    static func decode(_ text: Substring.UTF8View) -> [UInt8]? {
        let count = text.count
        guard count % 4 == 0 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(count / 4 * 3)
        var quantum: UInt32 = 0
        var quantumLength = 0
        var padding = 0
        for byte in text {
            if byte == UInt8(ascii: "=") {
                padding += 1
                guard padding <= 2 else { return nil }
                continue
            }
            // Padding is only allowed at the very end.
            guard padding == 0, let value = sextet(byte) else { return nil }
            quantum = quantum << 6 | UInt32(value)
            quantumLength += 1
            if quantumLength == 4 {
                output.append(UInt8(truncatingIfNeeded: quantum >> 16))
                output.append(UInt8(truncatingIfNeeded: quantum >> 8))
                output.append(UInt8(truncatingIfNeeded: quantum))
                quantum = 0
                quantumLength = 0
            }
        }
        switch (quantumLength, padding) {
        case (0, 0):
            break
        case (2, 2):
            // Canonical encodings leave the unused low bits zero (RFC 4648 section 3.5).
            guard quantum & 0xF == 0 else { return nil }
            output.append(UInt8(truncatingIfNeeded: quantum >> 4))
        case (3, 1):
            guard quantum & 0x3 == 0 else { return nil }
            output.append(UInt8(truncatingIfNeeded: quantum >> 10))
            output.append(UInt8(truncatingIfNeeded: quantum >> 2))
        default:
            return nil
        }
        return output
    }

    private static func sextet(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
