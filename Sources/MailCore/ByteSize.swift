/// A size such as `"32MiB"` or `"50MB"` (CLI-4): decimal (kB, MB, GB) and binary (KiB, MiB, GiB)
/// units, or plain bytes.
public enum ByteSize {
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingSpaces()
        let digits = trimmed.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let number = Int(digits) else { return nil }
        let unit = String(trimmed.dropFirst(digits.count)).trimmingSpaces().lowercased()
        let factor: Int
        switch unit {
        case "", "b": factor = 1
        case "k", "kb": factor = 1_000
        case "kib": factor = 1_024
        case "m", "mb": factor = 1_000_000
        case "mib": factor = 1_048_576
        case "g", "gb": factor = 1_000_000_000
        case "gib": factor = 1_073_741_824
        default: return nil
        }
        let (value, overflow) = number.multipliedReportingOverflow(by: factor)
        return overflow ? nil : value
    }

    /// Human form used in messages to users ("50 MB").
    public static func describe(_ bytes: Int) -> String {
        if bytes >= 1_000_000 && bytes % 1_000_000 == 0 { return "\(bytes / 1_000_000) MB" }
        if bytes >= 1_048_576 && bytes % 1_048_576 == 0 { return "\(bytes / 1_048_576) MiB" }
        if bytes >= 1_000 && bytes % 1_000 == 0 { return "\(bytes / 1_000) kB" }
        return "\(bytes) bytes"
    }
}

/// A duration such as `"2000s"`, `"5m"`, `"4h"`, `"5d"` (CLI-4), in seconds.
public enum DurationText {
    public static func parse(_ text: String) -> Double? {
        let trimmed = text.trimmingSpaces()
        let numberPart = trimmed.prefix { ($0.isASCII && $0.isNumber) || $0 == "." }
        guard !numberPart.isEmpty, let number = Double(numberPart), number >= 0 else { return nil }
        switch String(trimmed.dropFirst(numberPart.count)).trimmingSpaces().lowercased() {
        case "ms": return number / 1000
        case "s", "": return number
        case "m", "min": return number * 60
        case "h": return number * 3600
        case "d": return number * 86400
        default: return nil
        }
    }
}
