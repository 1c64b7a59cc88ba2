import Testing
import MailCore

/// Sizes and durations as written in the configuration and in account settings (CLI-4).
@Suite struct ByteSizeTests {
    @Test(arguments: [
        ("0", 0),
        ("1", 1),
        ("1024", 1024),
        ("10b", 10),
        ("10B", 10),
        ("1k", 1_000),
        ("1kB", 1_000),
        ("1KB", 1_000),
        ("1KiB", 1_024),
        ("1kib", 1_024),
        ("50MB", 50_000_000),
        ("50mb", 50_000_000),
        ("50M", 50_000_000),
        ("32MiB", 33_554_432),
        ("2GB", 2_000_000_000),
        ("1GiB", 1_073_741_824),
        ("3g", 3_000_000_000),
        ("  50 MB  ", 50_000_000),
        ("50\tMiB", 52_428_800),
        ("9223372036854775807", Int.max),
        ("8589934591GiB", 8_589_934_591 * 1_073_741_824),
    ])
    func parses(text: String, bytes: Int) {
        #expect(ByteSize.parse(text) == bytes)
    }

    @Test(arguments: [
        "",
        "   ",
        "MB",
        "-1",
        "-1MB",
        "+1MB",
        "1.5MB",
        "1,5MB",
        "50 potatoes",
        "50TB",
        "50MiBs",
        "5 0MB",
        "١٢MB",                    // non-ASCII digits
        "0x10",
        "9223372036854775808",     // Int.max + 1
        "99999999999999999999MB",
        "8589934592GiB",           // 2^33 GiB = 2^63: overflows Int
        "9223372036854775807kB",
        "10000000000GB",
    ])
    func refuses(text: String) {
        #expect(ByteSize.parse(text) == nil, "\(text) should be refused")
    }

    @Test(arguments: [
        (50_000_000, "50 MB"),
        (1_000_000, "1 MB"),
        (33_554_432, "32 MiB"),
        (1_048_576, "1 MiB"),
        (2_000, "2 kB"),
        (1_024, "1024 bytes"),
        (999, "999 bytes"),
        (0, "0 bytes"),
        (1_500_000, "1500 kB"),
    ])
    func describes(bytes: Int, text: String) {
        #expect(ByteSize.describe(bytes) == text)
    }

    @Test(arguments: ["50MB", "32MiB", "2kB", "999"])
    func describeRoundTrips(text: String) throws {
        let bytes = try #require(ByteSize.parse(text))
        var described = ByteSize.describe(bytes)
        if described.hasSuffix(" bytes") { described.removeLast(" bytes".count) }
        #expect(ByteSize.parse(described) == bytes)
    }
}

@Suite struct DurationTextTests {
    @Test(arguments: [
        ("2000s", 2000.0),
        ("2000", 2000.0),
        ("0s", 0.0),
        ("5m", 300.0),
        ("5min", 300.0),
        ("5M", 300.0),
        ("4h", 14_400.0),
        ("5d", 432_000.0),
        ("250ms", 0.25),
        ("1.5h", 5_400.0),
        ("0.5s", 0.5),
        (" 15 m ", 900.0),
    ])
    func parses(text: String, seconds: Double) {
        #expect(DurationText.parse(text) == seconds)
    }

    @Test(arguments: ["", "s", "soon", "-5s", "5w", "5 days", "1.2.3s", ".", "5sec", "1e3s", "5ss", "PT5M"])
    func refuses(text: String) {
        #expect(DurationText.parse(text) == nil, "\(text) should be refused")
    }
}
