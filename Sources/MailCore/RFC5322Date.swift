/// RFC 5322 3.3 date-time, always in UTC (`+0000`): no locale, no time zone database, no
/// Foundation formatter — a pure function of the seconds since 1970.
public enum RFC5322Date {
    private static let days = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]  // 1970-01-01 was a Thursday
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Sun, 29 Nov 2026 05:48:00 +0000`. With `roundedToMinute` the seconds are dropped (PRIV-2):
    /// the Date tells no more than the minute the message left.
    public static func format(secondsSince1970 seconds: Int64, roundedToMinute: Bool = true) -> String {
        let total = roundedToMinute ? seconds - ((seconds % 60) + 60) % 60 : seconds
        let dayNumber = floorDiv(total, 86400)
        let secondOfDay = total - dayNumber * 86400
        let (year, month, day) = civil(fromDays: dayNumber)
        let weekday = days[Int(((dayNumber % 7) + 7) % 7)]
        func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(weekday), \(day) \(months[Int(month) - 1]) \(year) \(two(secondOfDay / 3600)):\(two(secondOfDay % 3600 / 60)):\(two(secondOfDay % 60)) +0000"
    }

    /// Reads an RFC 5322 3.3 date-time leniently, with the obsolete forms of 4.3 (two- and
    /// three-digit years, zone names, comments, missing seconds or day name) and the asctime
    /// order (`Mon Jan  2 15:04:05 2006`). Returns seconds since 1970 in UTC, or nil when no day,
    /// month, year and time can be found or they are out of range.
    public static func parse(_ text: String) -> Int64? {
        // Comments hold nothing we need ("(CET)"); commas only separate.
        let cleaned = AddressList.stripComments(String(text.prefix(256)))
        let tokens = cleaned.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," || $0 == "\r" || $0 == "\n" })
        var day: Int64?, month: Int64?, year: Int64?, yearDigits = 0
        var time: (Int64, Int64, Int64)?
        var offset: Int64?
        for token in tokens {
            let t = token.lowercased()
            if t.contains(":") {
                guard time == nil else { continue }
                let pieces = t.split(separator: ":", omittingEmptySubsequences: false)
                guard pieces.count == 2 || pieces.count == 3,
                      pieces.allSatisfy({ !$0.isEmpty && $0.count <= 2 && $0.allSatisfy(\.isASCIIDigit) }) else { continue }
                time = (Int64(pieces[0])!, Int64(pieces[1])!, pieces.count == 3 ? Int64(pieces[2])! : 0)
            } else if let first = t.first, first == "+" || first == "-" {
                let digits = t.dropFirst()
                guard offset == nil, digits.count == 4, digits.allSatisfy(\.isASCIIDigit) else { continue }
                let value = Int64(digits)!
                guard value % 100 < 60 else { continue }
                offset = (first == "-" ? -1 : 1) * (value / 100 * 3600 + value % 100 * 60)
            } else if t.allSatisfy(\.isASCIIDigit) {
                guard t.count <= 4, let value = Int64(t) else { continue }
                if t.count <= 2 && day == nil {
                    day = value
                } else if year == nil {
                    year = value
                    yearDigits = t.count
                }
            } else if t.allSatisfy(\.isLetter) {
                if month == nil, t.count >= 3, let index = months.firstIndex(where: { t.hasPrefix($0.lowercased()) }) {
                    month = Int64(index + 1)
                } else if offset == nil, let zone = zoneOffset(t) {
                    offset = zone
                }
            }
        }
        guard let day, let month, var year, let (hour, minute, second) = time else { return nil }
        // RFC 5322 4.3: two-digit years below 50 are 20xx, others 19xx; three-digit years add 1900.
        if yearDigits <= 2 { year += year < 50 ? 2000 : 1900 } else if yearDigits == 3 { year += 1900 }
        guard (1...31).contains(day), day <= daysIn(month: month, year: year), hour < 24, minute < 60, second <= 60 else { return nil }
        return days(year: year, month: month, day: day) * 86400 + hour * 3600 + minute * 60 + second - (offset ?? 0)
    }

    /// RFC 5322 4.3 obs-zone. Military letters are read as +0000: RFC 822 got their signs
    /// backwards, so they tell nothing reliable. Unknown names give nil (the caller assumes UTC).
    private static func zoneOffset(_ name: String) -> Int64? {
        switch name {
        case "ut", "utc", "gmt", "z": return 0
        case "edt": return -4 * 3600
        case "est", "cdt": return -5 * 3600
        case "cst", "mdt": return -6 * 3600
        case "mst", "pdt": return -7 * 3600
        case "pst": return -8 * 3600
        default: return name.count == 1 && name != "j" ? 0 : nil
        }
    }

    private static func daysIn(month: Int64, year: Int64) -> Int64 {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    private static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        a >= 0 ? a / b : -((-a + b - 1) / b)
    }

    /// A proleptic Gregorian date to days since 1970-01-01 (H. Hinnant's days_from_civil).
    public static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days).
    public static func civil(fromDays z: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let z = z + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day)
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isWholeNumber }
}
