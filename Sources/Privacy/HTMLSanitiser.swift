/// The HTML mail policy (SPEC 10): an allowlist sanitiser for HTML bodies, used by the webmail to
/// show HTML mail and by the core's inbound sanitiser. Pure.
///
/// Nothing in the output may load anything by itself: every construct that fetches a resource
/// (img src/srcset, background attributes, CSS `url()` and friends, `@import`, `<link>`,
/// `<iframe>`, `<object>`, `<embed>`, media sources, `<meta http-equiv=refresh>`, `<base>`, forms,
/// SVG `<image>`/`<use>`) is removed, and so is everything active (scripts, `on*` handlers,
/// `javascript:`/`vbscript:`/`data:` links). A tracking pixel must never reach a reader.
///
/// How: the input is tokenised in the manner of the WHATWG tokenizer (HTML 13.2.5) and the output
/// is re-serialised from those tokens only, with allowlisted elements and attributes, every text
/// and attribute value re-escaped, and elements nested properly. Raw input never passes through,
/// so whatever a browser makes of the output, it sees exactly the tokens written here. CSS (style
/// attributes and `<style>` elements) goes through a small tokenizer after CSS Syntax 3 (section 4)
/// and is re-serialised the same way.
///
/// Kept: the elements in `allowedElements`; the attributes in `allowedAttributes` (plus `type` on
/// lists, `href` on `a` for http/https/mailto, `src` on `img` for `cid:` and `data:image/png|gif|
/// jpeg|webp`); kept links get `rel="noopener noreferrer" target="_blank"`. The text of unknown or
/// disallowed container elements is kept (`<blink>x</blink>` gives `x`); the content of elements
/// whose content is not readable text (scripts, frames, objects, SVG, MathML, forms controls such
/// as select, media) is dropped with them.
///
/// Bounded: one pass over the input, no recursion on HTML nesting, output nesting capped at
/// `maximumDepth` (deeper elements are flattened: their tags go, their content stays).
public struct HTMLSanitiser: Sendable {
    public struct Result: Sendable, Equatable {
        public var html: String
        /// Remote references removed: image sources, background attributes, CSS `url()`,
        /// `@import`, `@font-face`, links to style sheets, frames' and media sources, refreshes.
        public var removedRemoteReferences: Int
        /// Active content removed: scripts, event handlers, script URLs, frames, objects, forms,
        /// CSS expressions and bindings, fixed positioning.
        public var removedActiveContent: Int

        public init(html: String, removedRemoteReferences: Int = 0, removedActiveContent: Int = 0) {
            self.html = html
            self.removedRemoteReferences = removedRemoteReferences
            self.removedActiveContent = removedActiveContent
        }
    }

    /// Output nesting beyond this many open elements is flattened.
    public static let maximumDepth = 100

    public static let allowedElements: Set<String> = [
        "a", "abbr", "b", "blockquote", "br", "caption", "center", "cite", "code", "col", "colgroup",
        "dd", "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
        "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong",
        "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
    ]

    /// Attributes kept on any allowed element (`style` is sanitised; `href`, `src` and `type` are
    /// handled per element).
    public static let allowedAttributes: Set<String> = [
        "align", "alt", "bgcolor", "border", "cellpadding", "cellspacing", "color", "colspan", "dir",
        "face", "height", "lang", "rowspan", "size", "span", "start", "style", "title", "valign", "width",
    ]

    public init() {}

    public func sanitise(_ html: String) -> Result {
        sanitiseBytes(html.utf8)
    }

    /// Sanitises bytes that should be UTF-8; invalid sequences come out as U+FFFD.
    public func sanitiseBytes<Bytes: Sequence>(_ bytes: Bytes) -> Result where Bytes.Element == UInt8 {
        var run = HTMLRun(input: Array(bytes))
        run.run()
        return Result(html: String(decoding: run.out, as: UTF8.self),
                      removedRemoteReferences: run.remote, removedActiveContent: run.active)
    }
}

// MARK: - Character classes

private let lessThan = UInt8(ascii: "<"), greaterThan = UInt8(ascii: ">"), ampersand = UInt8(ascii: "&")
private let quotationMark = UInt8(ascii: "\""), apostrophe = UInt8(ascii: "'"), solidus = UInt8(ascii: "/")
private let equalsSign = UInt8(ascii: "="), exclamation = UInt8(ascii: "!"), hyphen = UInt8(ascii: "-")
private let questionMark = UInt8(ascii: "?"), numberSign = UInt8(ascii: "#"), semicolon = UInt8(ascii: ";")
private let replacementCharacter: [UInt8] = [0xEF, 0xBF, 0xBD]

@inline(__always) private func isASCIIAlpha(_ c: UInt8) -> Bool { (c | 0x20) >= 0x61 && (c | 0x20) <= 0x7A }
@inline(__always) private func isASCIIDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
@inline(__always) private func isASCIIAlphanumeric(_ c: UInt8) -> Bool { isASCIIAlpha(c) || isASCIIDigit(c) }
@inline(__always) private func isHexDigit(_ c: UInt8) -> Bool { isASCIIDigit(c) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) }
@inline(__always) private func lowercased(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c | 0x20 : c }
@inline(__always) private func hexValue(_ c: UInt8) -> UInt32 { isASCIIDigit(c) ? UInt32(c - 0x30) : UInt32((c | 0x20) - 0x61 + 10) }
/// HTML whitespace in tags: tab, LF, FF, space (13.2.5.1), and CR, which input preprocessing
/// (13.2.3.5) turns into LF.
@inline(__always) private func isHTMLSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D }

private func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
    let value = (scalar == 0 || scalar > 0x10FFFF || (0xD800...0xDFFF).contains(scalar)) ? 0xFFFD : scalar
    switch value {
    case 0..<0x80: out.append(UInt8(value))
    case 0x80..<0x800:
        out.append(UInt8(0xC0 | (value >> 6)))
        out.append(UInt8(0x80 | (value & 0x3F)))
    case 0x800..<0x10000:
        out.append(UInt8(0xE0 | (value >> 12)))
        out.append(UInt8(0x80 | ((value >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (value & 0x3F)))
    default:
        out.append(UInt8(0xF0 | (value >> 18)))
        out.append(UInt8(0x80 | ((value >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((value >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (value & 0x3F)))
    }
}

private func lowercasedBytes<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 { bytes.map(lowercased) }

private func contains(_ haystack: [UInt8], _ needle: String) -> Bool {
    let n = Array(needle.utf8)
    guard !n.isEmpty, haystack.count >= n.count else { return false }
    var i = 0
    while i + n.count <= haystack.count {
        if haystack[i] == n[0] {
            var k = 1
            while k < n.count && haystack[i + k] == n[k] { k += 1 }
            if k == n.count { return true }
        }
        i += 1
    }
    return false
}

private func hasPrefix(_ bytes: [UInt8], _ prefix: String) -> Bool {
    let p = Array(prefix.utf8)
    return bytes.count >= p.count && bytes[0..<p.count].elementsEqual(p)
}

// MARK: - Element and attribute tables

private enum Tables {
    static let voidAllowed: Set<String> = ["br", "col", "hr", "img"]

    /// Elements whose content the tokenizer reads as text, not markup (HTML 13.2.6.2 generic raw
    /// text and RCDATA parsing; script data 13.2.5.4), and which are dropped with their content.
    /// `noscript` is raw text when scripting is on, which is how the strictest reader would see it.
    static let rawTextDropped: Set<String> = ["script", "noscript", "iframe", "noembed", "noframes", "textarea", "title"]

    /// Elements dropped with their content: the content is fallback, plugin parameters, foreign
    /// (SVG, MathML) markup, options or inert template content, not text for the reader.
    static let subtreeDropped: Set<String> = [
        "object", "applet", "svg", "math", "template", "select", "datalist", "video", "audio", "portal", "frameset",
    ]

    /// Dropped elements that are active content in themselves (counted once each).
    static let active: Set<String> = ["script", "iframe", "frame", "frameset", "object", "embed", "applet", "portal", "form"]

    /// Attributes that make a browser fetch (or, for links, point at) a URL.
    static let urlAttributes: Set<String> = [
        "src", "srcset", "href", "xlink:href", "background", "lowsrc", "dynsrc", "poster", "longdesc", "data",
        "action", "formaction", "ping", "codebase", "archive", "manifest", "icon", "imagesrcset", "profile",
    ]

    static let listElements: Set<String> = ["ol", "ul", "li"]
}

// MARK: - Character references (HTML 13.2.5.72 ff.)

private enum CharacterReferences {
    /// The common named references (HTML 13.5, a subset). Others stay literal text, with their
    /// `&` escaped, so the reader sees them as written.
    static let named: [String: UInt32] = {
        var table: [String: UInt32] = [
            "amp": 0x26, "lt": 0x3C, "gt": 0x3E, "quot": 0x22, "apos": 0x27, "nbsp": 0xA0,
            "AMP": 0x26, "LT": 0x3C, "GT": 0x3E, "QUOT": 0x22, "COPY": 0xA9, "REG": 0xAE,
            "copy": 0xA9, "reg": 0xAE, "trade": 0x2122, "hellip": 0x2026, "mdash": 0x2014, "ndash": 0x2013,
            "lsquo": 0x2018, "rsquo": 0x2019, "sbquo": 0x201A, "ldquo": 0x201C, "rdquo": 0x201D, "bdquo": 0x201E,
            "bull": 0x2022, "middot": 0xB7, "laquo": 0xAB, "raquo": 0xBB, "lsaquo": 0x2039, "rsaquo": 0x203A,
            "euro": 0x20AC, "pound": 0xA3, "yen": 0xA5, "cent": 0xA2, "curren": 0xA4, "sect": 0xA7, "deg": 0xB0,
            "plusmn": 0xB1, "times": 0xD7, "divide": 0xF7, "para": 0xB6, "iexcl": 0xA1, "iquest": 0xBF,
            "shy": 0xAD, "zwnj": 0x200C, "zwj": 0x200D, "lrm": 0x200E, "rlm": 0x200F, "ensp": 0x2002,
            "emsp": 0x2003, "thinsp": 0x2009, "Tab": 0x09, "NewLine": 0x0A, "colon": 0x3A, "lpar": 0x28,
            "rpar": 0x29, "sol": 0x2F, "bsol": 0x5C, "num": 0x23, "excl": 0x21, "dollar": 0x24, "percnt": 0x25,
            "comma": 0x2C, "period": 0x2E, "semi": 0x3B, "equals": 0x3D, "quest": 0x3F, "commat": 0x40,
            "lsqb": 0x5B, "rsqb": 0x5D, "lbrack": 0x5B, "rbrack": 0x5D, "lcub": 0x7B, "rcub": 0x7D,
            "lbrace": 0x7B, "rbrace": 0x7D, "verbar": 0x7C, "vert": 0x7C, "lowbar": 0x5F, "grave": 0x60,
            "Hat": 0x5E, "ast": 0x2A, "plus": 0x2B, "micro": 0xB5, "ordf": 0xAA, "ordm": 0xBA, "sup1": 0xB9,
            "sup2": 0xB2, "sup3": 0xB3, "frac14": 0xBC, "frac12": 0xBD, "frac34": 0xBE, "acute": 0xB4,
            "cedil": 0xB8, "uml": 0xA8, "macr": 0xAF, "brvbar": 0xA6, "not": 0xAC, "dagger": 0x2020,
            "Dagger": 0x2021, "permil": 0x2030, "prime": 0x2032, "Prime": 0x2033, "larr": 0x2190,
            "uarr": 0x2191, "rarr": 0x2192, "darr": 0x2193, "harr": 0x2194, "hearts": 0x2665, "OElig": 0x152,
            "oelig": 0x153, "Scaron": 0x160, "scaron": 0x161, "Yuml": 0x178, "fnof": 0x192, "circ": 0x2C6,
            "tilde": 0x2DC, "check": 0x2713, "minus": 0x2212, "infin": 0x221E, "ne": 0x2260, "le": 0x2264,
            "ge": 0x2265, "asymp": 0x2248, "alpha": 0x3B1, "beta": 0x3B2, "pi": 0x3C0, "mu": 0x3BC,
        ]
        // Latin-1 letters U+00C0...U+00FF, in code point order (U+00D7 and U+00F7 are above).
        let latin = ["Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig", "Ccedil", "Egrave", "Eacute",
                     "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml", "ETH", "Ntilde", "Ograve", "Oacute",
                     "Ocirc", "Otilde", "Ouml", "", "Oslash", "Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute",
                     "THORN", "szlig", "agrave", "aacute", "acirc", "atilde", "auml", "aring", "aelig", "ccedil",
                     "egrave", "eacute", "ecirc", "euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde",
                     "ograve", "oacute", "ocirc", "otilde", "ouml", "", "oslash", "ugrave", "uacute", "ucirc",
                     "uuml", "yacute", "thorn", "yuml"]
        for (offset, name) in latin.enumerated() where !name.isEmpty { table[name] = 0xC0 + UInt32(offset) }
        return table
    }()

    /// Names browsers also accept without the semicolon (a subset of HTML 13.5's legacy names).
    static let legacy: [(name: [UInt8], scalar: UInt32)] = [
        ("nbsp", 0xA0), ("quot", 0x22), ("QUOT", 0x22), ("copy", 0xA9), ("COPY", 0xA9), ("amp", 0x26),
        ("AMP", 0x26), ("reg", 0xAE), ("REG", 0xAE), ("lt", 0x3C), ("LT", 0x3C), ("gt", 0x3E), ("GT", 0x3E),
    ].map { (Array($0.0.utf8), $0.1) }

    /// Numeric references to C1 controls are read as windows-1252 (HTML 13.2.5.80).
    static let windows1252: [UInt32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D, 0x017D, 0x8F,
        0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ]

    /// Decodes the character references in `input[range]` into UTF-8; U+0000 becomes U+FFFD
    /// (13.2.5.36 ff. for attribute values; text NULs are dropped by the caller's tree rules).
    static func decode(_ input: [UInt8], _ range: Range<Int>, inAttribute: Bool, dropNUL: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(range.count)
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let c = input[i]
            if c == 0 {
                if !dropNUL { out += replacementCharacter }
                i += 1
                continue
            }
            guard c == ampersand, i + 1 < end else {
                out.append(c)
                i += 1
                continue
            }
            let next = input[i + 1]
            if next == numberSign {
                // Numeric character reference (13.2.5.75 ff.).
                var j = i + 2
                let hex = j < end && (input[j] | 0x20) == UInt8(ascii: "x")
                if hex { j += 1 }
                let digitsStart = j
                var value: UInt32 = 0
                while j < end, hex ? isHexDigit(input[j]) : isASCIIDigit(input[j]) {
                    if value <= 0x10FFFF { value = value * (hex ? 16 : 10) + (hex ? hexValue(input[j]) : UInt32(input[j] - 0x30)) }
                    j += 1
                }
                if j == digitsStart {
                    // No digits: not a reference, the text stays as written.
                    out.append(c)
                    i += 1
                    continue
                }
                if j < end && input[j] == semicolon { j += 1 }
                if (0x80...0x9F).contains(value) { value = windows1252[Int(value - 0x80)] }
                appendUTF8(value, to: &out)
                i = j
                continue
            }
            guard isASCIIAlphanumeric(next) else {
                out.append(c)
                i += 1
                continue
            }
            // Named character reference (13.2.5.73): the longest name is 32 characters.
            var j = i + 1
            while j < end && j - i <= 32 && isASCIIAlphanumeric(input[j]) { j += 1 }
            if j < end && input[j] == semicolon, let scalar = named[String(decoding: input[(i + 1)..<j], as: UTF8.self)] {
                appendUTF8(scalar, to: &out)
                i = j + 1
                continue
            }
            // Legacy names without `;`. In attribute values one followed by an alphanumeric or `=`
            // is left alone for compatibility with URLs like `?a=1&copy=2` (13.2.5.73).
            let run = input[(i + 1)..<j]
            var matched: (length: Int, scalar: UInt32)?
            for entry in legacy where run.starts(with: entry.name) && entry.name.count > (matched?.length ?? 0) {
                matched = (entry.name.count, entry.scalar)
            }
            if let matched {
                let after = i + 1 + matched.length
                let blocked = inAttribute && after < end && (isASCIIAlphanumeric(input[after]) || input[after] == equalsSign)
                if !blocked {
                    appendUTF8(matched.scalar, to: &out)
                    i = after
                    continue
                }
            }
            out.append(c)
            i += 1
        }
        return out
    }
}

// MARK: - URLs

private enum URLPolicy {
    /// What the URL parser would see: leading and trailing C0 controls and spaces trimmed, tabs
    /// and newlines removed anywhere (URL Standard 4.4, basic URL parser).
    static func cleaned(_ value: [UInt8]) -> [UInt8] {
        var start = 0, end = value.count
        while start < end && value[start] <= 0x20 { start += 1 }
        while end > start && value[end - 1] <= 0x20 { end -= 1 }
        return value[start..<end].filter { $0 != 0x09 && $0 != 0x0A && $0 != 0x0D }
    }

    /// Links a reader may follow (by clicking; nothing is fetched on display).
    static func link(_ value: [UInt8]) -> [UInt8]? {
        let url = cleaned(value)
        let lower = lowercasedBytes(url)
        return hasPrefix(lower, "http:") || hasPrefix(lower, "https:") || hasPrefix(lower, "mailto:") ? url : nil
    }

    /// Image sources that load nothing remote: parts of the message itself (`cid:`, RFC 2392)
    /// and inline raster images.
    static func image(_ value: [UInt8]) -> [UInt8]? {
        let url = cleaned(value)
        let lower = lowercasedBytes(url)
        if hasPrefix(lower, "cid:") && lower.count > 4 { return url }
        for type in ["data:image/png", "data:image/gif", "data:image/jpeg", "data:image/webp"] where hasPrefix(lower, type) {
            let n = type.utf8.count
            if lower.count > n && (lower[n] == semicolon || lower[n] == UInt8(ascii: ",")) { return url }
        }
        return nil
    }

    /// URLs that run something rather than fetch it: counted as active content.
    static func isActive(_ value: [UInt8]) -> Bool {
        let squeezed = lowercasedBytes(value.filter { $0 > 0x20 })
        return hasPrefix(squeezed, "javascript:") || hasPrefix(squeezed, "vbscript:") || hasPrefix(squeezed, "livescript:")
            || hasPrefix(squeezed, "data:")
    }
}

// MARK: - HTML run

private struct HTMLAttribute {
    var name: String
    var value: Range<Int>
}

private struct HTMLTag {
    var name: String
    var attributes: [HTMLAttribute]
    var selfClosing: Bool
}

private struct HTMLRun {
    let input: [UInt8]
    var pos = 0
    var out: [UInt8] = []
    var remote = 0
    var active = 0
    /// Open allowed elements in the output, innermost last; never deeper than maximumDepth.
    var stack: [String] = []
    /// Start tags not written because the stack was full, per name, so their end tags go too.
    var flattened: [String: Int] = [:]
    /// While dropping an element with its content: its name and how many of it are open.
    var skipName = ""
    var skipDepth = 0

    init(input: [UInt8]) {
        self.input = input
        out.reserveCapacity(input.count)
    }

    mutating func run() {
        let n = input.count
        while pos < n {
            if input[pos] == lessThan {
                tagOpen()
                continue
            }
            var end = pos + 1
            while end < n && input[end] != lessThan { end += 1 }
            if skipDepth == 0 { writeText(pos..<end) }
            pos = end
        }
        for name in stack.reversed() { write("</\(name)>") }
        stack.removeAll()
    }

    // MARK: Output

    mutating func write(_ s: String) { out.append(contentsOf: s.utf8) }

    mutating func writeEscaped(_ bytes: [UInt8], inAttribute: Bool) {
        for c in bytes {
            switch c {
            case ampersand: write("&amp;")
            case lessThan: write("&lt;")
            case greaterThan: write("&gt;")
            case quotationMark where inAttribute: write("&quot;")
            default: out.append(c)
            }
        }
    }

    /// Text: references decoded, then re-escaped. NULs in text are ignored by tree construction
    /// (13.2.6.4.7), so they are dropped.
    mutating func writeText(_ range: Range<Int>) {
        writeEscaped(CharacterReferences.decode(input, range, inAttribute: false, dropNUL: true), inAttribute: false)
    }

    /// Raw text (xmp, plaintext): no references, just escaped.
    mutating func writeRawText(_ range: Range<Int>) {
        guard skipDepth == 0 else { return }
        writeEscaped(input[range].filter { $0 != 0 }, inAttribute: false)
    }

    mutating func writeAttribute(_ name: String, _ value: [UInt8]) {
        write(" \(name)=\"")
        writeEscaped(value, inAttribute: true)
        write("\"")
    }

    // MARK: Tokenizer (HTML 13.2.5)

    /// At `<` in the data state (13.2.5.6).
    mutating func tagOpen() {
        let n = input.count
        let next = pos + 1
        guard next < n else {
            if skipDepth == 0 { write("&lt;") }
            pos = n
            return
        }
        let c = input[next]
        if isASCIIAlpha(c) {
            pos = next
            // A tag cut off by the end of the input is dropped (eof-in-tag, 13.2.5.8 ff.).
            if let tag = readTag() { startTag(tag) }
            return
        }
        if c == solidus {
            // End tag open state (13.2.5.7).
            guard next + 1 < n else {
                if skipDepth == 0 { write("&lt;/") }
                pos = n
                return
            }
            let d = input[next + 1]
            if isASCIIAlpha(d) {
                pos = next + 1
                if let tag = readTag() { endTag(tag.name) }
            } else if d == greaterThan {
                pos = next + 2
            } else {
                pos = next + 1
                bogusComment()
            }
            return
        }
        if c == exclamation {
            // Markup declaration open (13.2.5.42): comments, DOCTYPE and, outside foreign
            // content, CDATA (which is then a bogus comment) are all dropped.
            if next + 2 < n && input[next + 1] == hyphen && input[next + 2] == hyphen {
                pos = next + 3
                comment()
            } else {
                pos = next + 1
                bogusComment()
            }
            return
        }
        if c == questionMark {
            pos = next
            bogusComment()
            return
        }
        if skipDepth == 0 { write("&lt;") }
        pos = next
    }

    /// Comment states (13.2.5.43 ff.): ends at `-->` or `--!>`; `<!-->` and `<!--->` end at once.
    /// Conditional comments (`<!--[if mso]>...<![endif]-->`) are ordinary comments here.
    mutating func comment() {
        let n = input.count
        if pos < n && input[pos] == greaterThan { pos += 1; return }
        if pos + 1 < n && input[pos] == hyphen && input[pos + 1] == greaterThan { pos += 2; return }
        var i = pos
        while i + 2 < n {
            if input[i] == hyphen && input[i + 1] == hyphen {
                if input[i + 2] == greaterThan { pos = i + 3; return }
                if input[i + 2] == exclamation && i + 3 < n && input[i + 3] == greaterThan { pos = i + 4; return }
            }
            i += 1
        }
        pos = n
    }

    /// Bogus comment state (13.2.5.41): everything up to the next `>`.
    mutating func bogusComment() {
        while pos < input.count && input[pos] != greaterThan { pos += 1 }
        pos = min(pos + 1, input.count)
    }

    /// Tag name, attribute and self-closing states (13.2.5.8, 13.2.5.32 ff.), from the first letter
    /// of the name. Names are ASCII-lowercased; of duplicate attributes the first wins
    /// (13.2.5.33). Returns nil, having consumed everything, at the end of the input.
    mutating func readTag() -> HTMLTag? {
        let n = input.count
        var nameBytes: [UInt8] = []
        while pos < n && !isHTMLSpace(input[pos]) && input[pos] != solidus && input[pos] != greaterThan {
            if input[pos] == 0 { nameBytes += replacementCharacter } else { nameBytes.append(lowercased(input[pos])) }
            pos += 1
        }
        var tag = HTMLTag(name: String(decoding: nameBytes, as: UTF8.self), attributes: [], selfClosing: false)
        var seen: Set<String> = []
        while true {
            while pos < n && isHTMLSpace(input[pos]) { pos += 1 }
            guard pos < n else { pos = n; return nil }
            let c = input[pos]
            if c == greaterThan {
                pos += 1
                return tag
            }
            if c == solidus {
                pos += 1
                guard pos < n else { pos = n; return nil }
                if input[pos] == greaterThan {
                    pos += 1
                    tag.selfClosing = true
                    return tag
                }
                continue
            }
            // Attribute name: the first character is taken whatever it is (even `=`).
            let nameStart = pos
            pos += 1
            while pos < n && !isHTMLSpace(input[pos]) && input[pos] != solidus && input[pos] != greaterThan && input[pos] != equalsSign {
                pos += 1
            }
            var attributeName: [UInt8] = []
            for b in input[nameStart..<pos] {
                if b == 0 { attributeName += replacementCharacter } else { attributeName.append(lowercased(b)) }
            }
            while pos < n && isHTMLSpace(input[pos]) { pos += 1 }
            var value = pos..<pos
            if pos < n && input[pos] == equalsSign {
                pos += 1
                while pos < n && isHTMLSpace(input[pos]) { pos += 1 }
                guard pos < n else { pos = n; return nil }
                let q = input[pos]
                if q == quotationMark || q == apostrophe {
                    let start = pos + 1
                    var end = start
                    while end < n && input[end] != q { end += 1 }
                    guard end < n else { pos = n; return nil }
                    value = start..<end
                    pos = end + 1
                } else if q != greaterThan {
                    let start = pos
                    while pos < n && !isHTMLSpace(input[pos]) && input[pos] != greaterThan { pos += 1 }
                    value = start..<pos
                }
            }
            let name = String(decoding: attributeName, as: UTF8.self)
            if seen.insert(name).inserted {
                tag.attributes.append(HTMLAttribute(name: name, value: value))
            }
        }
    }

    /// The content of a raw text or RCDATA element up to its end tag (13.2.5.2, 13.2.5.3 and the
    /// end tag name states 13.2.5.11 ff.): `</name` followed by whitespace, `/` or `>`. The end tag
    /// itself is consumed; without one the content runs to the end of the input.
    mutating func readRawText(_ name: String) -> Range<Int> {
        let n = input.count
        let nameBytes = Array(name.utf8)
        let start = pos
        var i = pos
        while i + 1 < n {
            if input[i] == lessThan && input[i + 1] == solidus {
                let after = i + 2 + nameBytes.count
                if after < n {
                    var k = 0
                    while k < nameBytes.count && lowercased(input[i + 2 + k]) == nameBytes[k] { k += 1 }
                    let c = input[after]
                    if k == nameBytes.count && (isHTMLSpace(c) || c == solidus || c == greaterThan) {
                        pos = i + 2
                        _ = readTag()
                        return start..<i
                    }
                }
            }
            i += 1
        }
        pos = n
        return start..<n
    }

    // MARK: Tree rules

    mutating func startTag(_ tag: HTMLTag) {
        var name = tag.name
        if skipDepth > 0 {
            countDropped(tag)
            if name == skipName && !(tag.selfClosing && (name == "svg" || name == "math")) { skipDepth += 1 }
            if Tables.rawTextDropped.contains(name) || name == "style" || name == "xmp" { _ = readRawText(name) }
            if name == "plaintext" { pos = input.count }
            return
        }
        // An `image` start tag is an `img` (13.2.6.4.7).
        if name == "image" { name = "img" }
        if HTMLSanitiser.allowedElements.contains(name) {
            writeStart(name, tag)
            return
        }
        countDropped(tag)
        switch name {
        case "style":
            let css = readRawText("style")
            var sanitiser = CSSSanitiser()
            let sheet = sanitiser.styleSheet(Array(input[css]))
            remote += sanitiser.removedRemote
            active += sanitiser.removedActive
            if !sheet.isEmpty {
                write("<style>")
                out += sheet
                write("</style>")
            }
        case _ where Tables.rawTextDropped.contains(name):
            _ = readRawText(name)
        case "xmp":
            writeRawText(readRawText("xmp"))
        case "plaintext":
            // Everything after <plaintext> is text (13.2.5.5).
            writeRawText(pos..<input.count)
            pos = input.count
        case _ where Tables.subtreeDropped.contains(name):
            // A self-closing <svg/> or <math/> has no content (foreign elements, 13.2.6.5).
            if !(tag.selfClosing && (name == "svg" || name == "math")) {
                skipName = name
                skipDepth = 1
            }
        default:
            // Unknown or disallowed container (html, body, font-less legacy tags, form, button...):
            // the tag goes, its content stays.
            break
        }
    }

    mutating func endTag(_ tagName: String) {
        if skipDepth > 0 {
            if tagName == skipName { skipDepth -= 1 }
            return
        }
        guard HTMLSanitiser.allowedElements.contains(tagName), !Tables.voidAllowed.contains(tagName) else { return }
        if let count = flattened[tagName], count > 0 {
            flattened[tagName] = count - 1
            return
        }
        // Closes the innermost open element of that name and everything inside it; an end tag
        // with nothing to close is ignored (cf. 13.2.6.4.7 "any other end tag").
        guard let index = stack.lastIndex(of: tagName) else { return }
        for open in stack[index...].reversed() { write("</\(open)>") }
        stack.removeSubrange(index...)
    }

    mutating func writeStart(_ name: String, _ tag: HTMLTag) {
        let isVoid = Tables.voidAllowed.contains(name)
        if !isVoid && stack.count >= HTMLSanitiser.maximumDepth {
            flattened[name, default: 0] += 1
            countDropped(tag)
            return
        }
        write("<\(name)")
        var keptLink = false
        for attribute in tag.attributes {
            let value = CharacterReferences.decode(input, attribute.value, inAttribute: true)
            switch attribute.name {
            case "href" where name == "a":
                if let url = URLPolicy.link(value) {
                    writeAttribute("href", url)
                    keptLink = true
                } else if URLPolicy.isActive(value) {
                    active += 1
                }
            case "src" where name == "img":
                if let url = URLPolicy.image(value) {
                    writeAttribute("src", url)
                } else {
                    countDroppedURL(value)
                }
            case "style":
                var sanitiser = CSSSanitiser()
                let css = sanitiser.declarations(value)
                remote += sanitiser.removedRemote
                active += sanitiser.removedActive
                if !css.isEmpty { writeAttribute("style", css) }
            case "type" where Tables.listElements.contains(name):
                writeAttribute("type", value)
            case let other where HTMLSanitiser.allowedAttributes.contains(other):
                writeAttribute(other, value)
            default:
                countDroppedAttribute(attribute.name, value)
            }
        }
        if keptLink {
            // The target page learns neither the webmail's address nor gets a handle on it.
            write(" rel=\"noopener noreferrer\" target=\"_blank\"")
        }
        write(">")
        if !isVoid { stack.append(name) }
    }

    // MARK: Counting what is dropped

    mutating func countDropped(_ tag: HTMLTag) {
        if Tables.active.contains(tag.name) { active += 1 }
        var refresh = false
        for attribute in tag.attributes {
            let value = CharacterReferences.decode(input, attribute.value, inAttribute: true)
            if tag.name == "meta" && attribute.name == "http-equiv" {
                refresh = lowercasedBytes(URLPolicy.cleaned(value)) == Array("refresh".utf8)
            }
            countDroppedAttribute(attribute.name, value)
        }
        if refresh { remote += 1 }
    }

    mutating func countDroppedAttribute(_ name: String, _ value: [UInt8]) {
        if name.utf8.count > 2 && name.hasPrefix("on") {
            // Event handler content attributes (HTML 8.1.8.1).
            active += 1
        } else if Tables.urlAttributes.contains(name) {
            countDroppedURL(value)
        } else if name == "style" {
            var sanitiser = CSSSanitiser()
            _ = sanitiser.declarations(value)
            remote += sanitiser.removedRemote
            active += sanitiser.removedActive
        }
    }

    mutating func countDroppedURL(_ value: [UInt8]) {
        guard !URLPolicy.cleaned(value).isEmpty else { return }
        if URLPolicy.isActive(value) { active += 1 } else { remote += 1 }
    }
}

// MARK: - CSS

/// CSS Syntax 3 token kinds (section 4).
private enum CSSKind: UInt8 {
    case ident, function, atKeyword, hash, string, badString, url, badURL, delim, number, percentage, dimension
    case whitespace, cdo, cdc, colon, semicolon, comma, openSquare, closeSquare, openParen, closeParen, openCurly, closeCurly

    var closer: CSSKind? {
        switch self {
        case .openSquare: .closeSquare
        case .openParen, .function: .closeParen
        case .openCurly: .closeCurly
        default: nil
        }
    }
}

private struct CSSToken {
    var kind: CSSKind
    /// Name, string content, unit or delimiter, escapes decoded.
    var value: [UInt8] = []
    /// A number's own representation (sign, digits, point, exponent).
    var repr: [UInt8] = []
}

/// The CSS tokenizer (CSS Syntax 3, 4.3). Comments are dropped; a comment stands for whitespace
/// so that `ur/**/l(` cannot be re-serialised into `url(` (browsers read it as two tokens anyway).
private struct CSSTokenizer {
    let s: [UInt8]
    var i = 0

    /// Input preprocessing (3.3): CR, FF and CRLF become LF, U+0000 becomes U+FFFD.
    init(_ raw: [UInt8]) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(raw.count)
        var k = 0
        while k < raw.count {
            let c = raw[k]
            if c == 0x0D {
                bytes.append(0x0A)
                if k + 1 < raw.count && raw[k + 1] == 0x0A { k += 1 }
            } else if c == 0x0C {
                bytes.append(0x0A)
            } else if c == 0 {
                bytes += replacementCharacter
            } else {
                bytes.append(c)
            }
            k += 1
        }
        s = bytes
    }

    static func tokens(_ raw: [UInt8]) -> [CSSToken] {
        var tokenizer = CSSTokenizer(raw)
        var result: [CSSToken] = []
        while let token = tokenizer.next() { result.append(token) }
        return result
    }

    func peek(_ k: Int = 0) -> Int { i + k < s.count ? Int(s[i + k]) : -1 }

    static func isWhitespace(_ c: Int) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A }
    static func isNameStart(_ c: Int) -> Bool { c >= 0x80 || c == 0x5F || (c >= 0 && isASCIIAlpha(UInt8(c))) }
    static func isName(_ c: Int) -> Bool { isNameStart(c) || c == 0x2D || (c >= 0x30 && c <= 0x39) }
    static func isDigit(_ c: Int) -> Bool { c >= 0x30 && c <= 0x39 }

    /// 4.3.8: a backslash not followed by a newline.
    func validEscape(_ k: Int) -> Bool { peek(k) == 0x5C && peek(k + 1) != 0x0A }

    /// 4.3.9.
    func startsIdent(_ k: Int) -> Bool {
        let c = peek(k)
        if c == 0x2D { return Self.isNameStart(peek(k + 1)) || peek(k + 1) == 0x2D || validEscape(k + 1) }
        if Self.isNameStart(c) { return true }
        return c == 0x5C && validEscape(k)
    }

    /// 4.3.10.
    func startsNumber(_ k: Int) -> Bool {
        let c = peek(k)
        if c == 0x2B || c == 0x2D {
            return Self.isDigit(peek(k + 1)) || (peek(k + 1) == 0x2E && Self.isDigit(peek(k + 2)))
        }
        if c == 0x2E { return Self.isDigit(peek(k + 1)) }
        return Self.isDigit(c)
    }

    mutating func next() -> CSSToken? {
        // Comments (4.3.2).
        var sawComment = false
        while peek() == 0x2F && peek(1) == 0x2A {
            var k = i + 2
            while k + 1 < s.count && !(s[k] == 0x2A && s[k + 1] == 0x2F) { k += 1 }
            i = k + 1 < s.count ? k + 2 : s.count
            sawComment = true
        }
        if sawComment { return CSSToken(kind: .whitespace) }
        guard i < s.count else { return nil }
        let c = Int(s[i])
        switch c {
        case 0x20, 0x09, 0x0A:
            while Self.isWhitespace(peek()) { i += 1 }
            return CSSToken(kind: .whitespace)
        case 0x22, 0x27:
            return string(UInt8(c))
        case 0x23:
            if Self.isName(peek(1)) || validEscape(1) {
                i += 1
                return CSSToken(kind: .hash, value: name())
            }
        case 0x28: i += 1; return CSSToken(kind: .openParen)
        case 0x29: i += 1; return CSSToken(kind: .closeParen)
        case 0x2C: i += 1; return CSSToken(kind: .comma)
        case 0x3A: i += 1; return CSSToken(kind: .colon)
        case 0x3B: i += 1; return CSSToken(kind: .semicolon)
        case 0x5B: i += 1; return CSSToken(kind: .openSquare)
        case 0x5D: i += 1; return CSSToken(kind: .closeSquare)
        case 0x7B: i += 1; return CSSToken(kind: .openCurly)
        case 0x7D: i += 1; return CSSToken(kind: .closeCurly)
        case 0x2B, 0x2E:
            if startsNumber(0) { return numeric() }
        case 0x2D:
            if startsNumber(0) { return numeric() }
            if peek(1) == 0x2D && peek(2) == 0x3E {
                i += 3
                return CSSToken(kind: .cdc)
            }
            if startsIdent(0) { return identLike() }
        case 0x3C:
            if peek(1) == 0x21 && peek(2) == 0x2D && peek(3) == 0x2D {
                i += 4
                return CSSToken(kind: .cdo)
            }
        case 0x40:
            if startsIdent(1) {
                i += 1
                return CSSToken(kind: .atKeyword, value: name())
            }
        case 0x5C:
            if validEscape(0) { return identLike() }
        default:
            if Self.isDigit(c) { return numeric() }
            if Self.isNameStart(c) { return identLike() }
        }
        i += 1
        return CSSToken(kind: .delim, value: [UInt8(c)])
    }

    /// 4.3.7, after the backslash.
    mutating func escape(into out: inout [UInt8]) {
        guard i < s.count else {
            out += replacementCharacter
            return
        }
        if isHexDigit(s[i]) {
            var value: UInt32 = 0
            var count = 0
            while count < 6 && i < s.count && isHexDigit(s[i]) {
                value = value * 16 + hexValue(s[i])
                i += 1
                count += 1
            }
            if Self.isWhitespace(peek()) { i += 1 }
            appendUTF8(value, to: &out)
        } else {
            out.append(s[i])
            i += 1
        }
    }

    /// 4.3.12.
    mutating func name() -> [UInt8] {
        var out: [UInt8] = []
        while i < s.count {
            if Self.isName(Int(s[i])) {
                out.append(s[i])
                i += 1
            } else if validEscape(0) {
                i += 1
                escape(into: &out)
            } else {
                break
            }
        }
        return out
    }

    /// 4.3.3.
    mutating func numeric() -> CSSToken {
        var repr: [UInt8] = []
        if peek() == 0x2B || peek() == 0x2D { repr.append(s[i]); i += 1 }
        while Self.isDigit(peek()) { repr.append(s[i]); i += 1 }
        if peek() == 0x2E && Self.isDigit(peek(1)) {
            repr.append(s[i]); i += 1
            while Self.isDigit(peek()) { repr.append(s[i]); i += 1 }
        }
        if peek() == 0x45 || peek() == 0x65 {
            if Self.isDigit(peek(1)) || ((peek(1) == 0x2B || peek(1) == 0x2D) && Self.isDigit(peek(2))) {
                repr.append(s[i]); i += 1
                if !Self.isDigit(peek()) { repr.append(s[i]); i += 1 }
                while Self.isDigit(peek()) { repr.append(s[i]); i += 1 }
            }
        }
        if startsIdent(0) { return CSSToken(kind: .dimension, value: name(), repr: repr) }
        if peek() == 0x25 {
            i += 1
            return CSSToken(kind: .percentage, repr: repr)
        }
        return CSSToken(kind: .number, repr: repr)
    }

    /// 4.3.4: idents, functions and `url(`, whose name may be written with escapes (`u\72l(`).
    mutating func identLike() -> CSSToken {
        let value = name()
        if peek() == 0x28 {
            i += 1
            if lowercasedBytes(value) == Array("url".utf8) {
                while Self.isWhitespace(peek()) && Self.isWhitespace(peek(1)) { i += 1 }
                let q = peek(), q2 = peek(1)
                if q == 0x22 || q == 0x27 || (Self.isWhitespace(q) && (q2 == 0x22 || q2 == 0x27)) {
                    return CSSToken(kind: .function, value: value)
                }
                return url()
            }
            return CSSToken(kind: .function, value: value)
        }
        return CSSToken(kind: .ident, value: value)
    }

    /// 4.3.6.
    mutating func url() -> CSSToken {
        var value: [UInt8] = []
        while Self.isWhitespace(peek()) { i += 1 }
        while true {
            let c = peek()
            if c == -1 { return CSSToken(kind: .url, value: value) }
            if c == 0x29 {
                i += 1
                return CSSToken(kind: .url, value: value)
            }
            if Self.isWhitespace(c) {
                while Self.isWhitespace(peek()) { i += 1 }
                if peek() == 0x29 || peek() == -1 {
                    if peek() == 0x29 { i += 1 }
                    return CSSToken(kind: .url, value: value)
                }
                badURLRemnants()
                return CSSToken(kind: .badURL)
            }
            if c == 0x22 || c == 0x27 || c == 0x28 || (c <= 0x08) || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F {
                badURLRemnants()
                return CSSToken(kind: .badURL)
            }
            if c == 0x5C {
                if validEscape(0) {
                    i += 1
                    escape(into: &value)
                    continue
                }
                badURLRemnants()
                return CSSToken(kind: .badURL)
            }
            value.append(s[i])
            i += 1
        }
    }

    /// 4.3.14.
    mutating func badURLRemnants() {
        while i < s.count {
            if s[i] == 0x29 {
                i += 1
                return
            }
            if validEscape(0) {
                i += 1
                var sink: [UInt8] = []
                escape(into: &sink)
            } else {
                i += 1
            }
        }
    }

    /// 4.3.5.
    mutating func string(_ quote: UInt8) -> CSSToken {
        i += 1
        var value: [UInt8] = []
        while i < s.count {
            let c = s[i]
            if c == quote {
                i += 1
                return CSSToken(kind: .string, value: value)
            }
            if c == 0x0A { return CSSToken(kind: .badString) }
            if c == 0x5C {
                if i + 1 >= s.count {
                    i += 1
                } else if s[i + 1] == 0x0A {
                    i += 2
                } else {
                    i += 1
                    escape(into: &value)
                }
                continue
            }
            value.append(c)
            i += 1
        }
        return CSSToken(kind: .string, value: value)
    }
}

/// Sanitises style sheets and declaration lists: parses them (CSS Syntax 3, section 5, without
/// recursion beyond `maximumDepth` levels of nested at-rules) and writes back only what loads
/// nothing and runs nothing.
private struct CSSSanitiser {
    var removedRemote = 0
    var removedActive = 0
    var tokens: [CSSToken] = []
    /// For each opening token (`(`, `[`, `{`, function), the index of its closing token, or
    /// `tokens.count` if it has none. A closer of another kind inside is an ordinary token (5.4.8).
    var matches: [Int] = []

    static let maximumDepth = 4

    /// Fragments whose presence anywhere in a declaration (with comments and whitespace removed,
    /// escapes decoded, lowercased) means it could load something.
    static let remoteNeedles = ["url(", "image(", "image-set(", "image-rect(", "src(", "attr(", "@import"]
    /// ... or run something: IE expressions and behaviours, Mozilla XBL bindings.
    static let activeNeedles = ["expression(", "behavior", "binding", "javascript:", "vbscript:"]

    mutating func load(_ css: [UInt8]) {
        tokens = CSSTokenizer.tokens(css)
        matches = Array(repeating: tokens.count, count: tokens.count)
        var open: [Int] = []
        for (index, token) in tokens.enumerated() {
            if token.kind.closer != nil {
                open.append(index)
            } else if let last = open.last, tokens[last].kind.closer == token.kind {
                matches[last] = index
                open.removeLast()
            }
        }
    }

    /// The contents of a `style` attribute (CSS Style Attributes: a declaration list).
    mutating func declarations(_ css: [UInt8]) -> [UInt8] {
        load(css)
        return declarationList(0..<tokens.count)
    }

    /// The contents of a `style` element: a style sheet.
    mutating func styleSheet(_ css: [UInt8]) -> [UInt8] {
        load(css)
        var out: [UInt8] = []
        ruleList(0..<tokens.count, depth: 0, into: &out)
        return out
    }

    /// The end of the component value starting at `index` within `end`.
    func skipValue(_ index: Int, _ end: Int) -> Int {
        tokens[index].kind.closer != nil ? min(matches[index], end - 1) + 1 : index + 1
    }

    /// Consume a list of rules (5.4.1): at-rules and qualified rules.
    mutating func ruleList(_ range: Range<Int>, depth: Int, into out: inout [UInt8]) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            switch tokens[i].kind {
            case .whitespace, .cdo, .cdc:
                i += 1
            case .atKeyword:
                // Consume an at-rule (5.4.2): up to `;` or through a {} block.
                var j = i + 1
                while j < end && tokens[j].kind != .semicolon && tokens[j].kind != .openCurly { j = skipValue(j, end) }
                let prelude = (i + 1)..<j
                var body: Range<Int>?
                var next = j + 1
                if j < end && tokens[j].kind == .openCurly {
                    let close = min(matches[j], end)
                    body = (j + 1)..<close
                    next = close + 1
                }
                atRule(i, prelude: prelude, body: body, depth: depth, into: &out)
                i = next
            default:
                // Consume a qualified rule (5.4.3); without a block it is dropped.
                var j = i
                while j < end && tokens[j].kind != .openCurly { j = skipValue(j, end) }
                guard j < end else { return }
                let close = min(matches[j], end)
                qualifiedRule(prelude: i..<j, body: (j + 1)..<close, into: &out)
                i = close + 1
            }
        }
    }

    mutating func atRule(_ index: Int, prelude: Range<Int>, body: Range<Int>?, depth: Int, into out: inout [UInt8]) {
        let name = lowercasedBytes(tokens[index].value)
        let text = String(decoding: name, as: UTF8.self)
        switch text {
        case "import", "font-face":
            // @import fetches a style sheet; @font-face's src fetches fonts.
            removedRemote += 1
        case "media", "supports", "keyframes", "-webkit-keyframes", "-moz-keyframes":
            guard let body, depth + 1 < Self.maximumDepth, policyAllows(prelude), let preludeText = serialise(prelude) else { return }
            var inner: [UInt8] = []
            ruleList(body, depth: depth + 1, into: &inner)
            guard !inner.isEmpty else { return }
            out += Array("@\(text)".utf8)
            if !preludeText.isEmpty { out.append(0x20); out += preludeText }
            out.append(0x7B)
            out += inner
            out.append(0x7D)
        default:
            // @namespace, @charset, @page, @property, @layer, @-moz-document...: dropped.
            break
        }
    }

    mutating func qualifiedRule(prelude: Range<Int>, body: Range<Int>, into out: inout [UInt8]) {
        guard policyAllows(prelude), let selector = serialise(prelude), !selector.isEmpty else {
            countOnly(body)
            return
        }
        let declarations = declarationList(body)
        guard !declarations.isEmpty else { return }
        out += selector
        out.append(0x7B)
        out += declarations
        out.append(0x7D)
    }

    /// Counts what a dropped rule's declarations would have loaded.
    mutating func countOnly(_ body: Range<Int>) {
        _ = declarationList(body)
    }

    /// Consume a list of declarations (5.4.5): split at top-level `;`, keep the good ones.
    mutating func declarationList(_ range: Range<Int>) -> [UInt8] {
        var out: [UInt8] = []
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            var j = i
            while j < end && tokens[j].kind != .semicolon { j = skipValue(j, end) }
            if let declaration = declaration(i..<j) {
                if !out.isEmpty { out.append(semicolon) }
                out += declaration
            }
            i = j + 1
        }
        return out
    }

    func trimmed(_ range: Range<Int>) -> Range<Int> {
        var start = range.lowerBound, end = range.upperBound
        while start < end && tokens[start].kind == .whitespace { start += 1 }
        while end > start && tokens[end - 1].kind == .whitespace { end -= 1 }
        return start..<end
    }

    /// Lowercased, whitespace-free text of the tokens (strings' contents included) with escapes
    /// decoded and comments gone, for the needle checks.
    func squeezed(_ range: Range<Int>) -> [UInt8] {
        var text: [UInt8] = []
        for token in tokens[range] {
            switch token.kind {
            case .ident, .string, .badString, .delim: text += token.value
            case .function: text += token.value; text.append(0x28)
            case .atKeyword: text.append(0x40); text += token.value
            case .hash: text.append(numberSign); text += token.value
            case .url, .badURL: text += Array("url(".utf8); text += token.value
            case .number: text += token.repr
            case .percentage: text += token.repr; text.append(0x25)
            case .dimension: text += token.repr; text += token.value
            case .whitespace: break
            case .cdo: text += Array("<!--".utf8)
            case .cdc: text += Array("-->".utf8)
            case .colon: text.append(0x3A)
            case .semicolon: text.append(semicolon)
            case .comma: text.append(0x2C)
            case .openSquare: text.append(0x5B)
            case .closeSquare: text.append(0x5D)
            case .openParen: text.append(0x28)
            case .closeParen: text.append(0x29)
            case .openCurly: text.append(0x7B)
            case .closeCurly: text.append(0x7D)
            }
        }
        // Whitespace inside strings goes too: the checks are deliberately blunter than CSS.
        return lowercasedBytes(text.filter { $0 > 0x20 })
    }

    /// The needle checks, counted; for declarations and for preludes (a selector or media query
    /// has no business holding `url(` either, even split by a comment).
    mutating func policyAllows(_ range: Range<Int>) -> Bool {
        let everything = squeezed(range)
        if Self.activeNeedles.contains(where: { contains(everything, $0) }) {
            removedActive += 1
            return false
        }
        if Self.remoteNeedles.contains(where: { contains(everything, $0) }) {
            removedRemote += 1
            return false
        }
        return true
    }

    /// Consume a declaration (5.4.6), then the policy. Returns the re-serialised declaration.
    mutating func declaration(_ whole: Range<Int>) -> [UInt8]? {
        let range = trimmed(whole)
        guard !range.isEmpty, policyAllows(range) else { return nil }
        let head = tokens[range.lowerBound]
        guard head.kind == .ident else { return nil }
        var i = range.lowerBound + 1
        while i < range.upperBound && tokens[i].kind == .whitespace { i += 1 }
        guard i < range.upperBound, tokens[i].kind == .colon else { return nil }
        let valueRange = trimmed((i + 1)..<range.upperBound)
        let name = lowercasedBytes(head.value)
        let value = squeezed(valueRange)
        // Custom properties and var() could carry a value assembled elsewhere; mail does not need them.
        if hasPrefix(name, "--") || contains(value, "var(") { return nil }
        // A fixed box can cover the reader's interface with a fake one.
        if name == Array("position".utf8) && contains(value, "fixed") {
            removedActive += 1
            return nil
        }
        guard !valueRange.isEmpty, let serialisedValue = serialise(valueRange) else { return nil }
        return identifier(name) + [0x3A] + serialisedValue
    }

    // MARK: Serialisation (after CSSOM 2.1 "serialize an identifier" / "serialize a string")

    /// The tokens written back, whitespace collapsed; nil if they hold anything that is not
    /// plain, balanced CSS (blocks `{}`, bad strings or URLs, odd delimiters such as `<` or `\`).
    func serialise(_ whole: Range<Int>) -> [UInt8]? {
        let range = trimmed(whole)
        var out: [UInt8] = []
        var open: [CSSKind] = []
        var pendingSpace = false
        for token in tokens[range] {
            if token.kind == .whitespace {
                pendingSpace = true
                continue
            }
            if pendingSpace {
                out.append(0x20)
                pendingSpace = false
            }
            switch token.kind {
            case .ident: out += identifier(token.value)
            case .function:
                out += identifier(token.value)
                out.append(0x28)
                open.append(.closeParen)
            case .hash:
                out.append(numberSign)
                for c in token.value { appendNameCharacter(c, to: &out) }
            case .string: out += string(token.value)
            case .delim:
                guard let c = token.value.first, Array("!#$%&*+-./=>?@^|~`".utf8).contains(c) else { return nil }
                out.append(c)
            case .number: out += token.repr
            case .percentage: out += token.repr; out.append(0x25)
            case .dimension:
                out += token.repr
                // A unit starting with e/E would read back as an exponent.
                if let first = token.value.first, first | 0x20 == UInt8(ascii: "e") {
                    out += Array("\\\(String(first, radix: 16)) ".utf8)
                    out += identifierTail(Array(token.value.dropFirst()))
                } else {
                    out += identifier(token.value)
                }
            case .colon: out.append(0x3A)
            case .comma: out.append(0x2C)
            case .openSquare:
                out.append(0x5B)
                open.append(.closeSquare)
            case .openParen:
                out.append(0x28)
                open.append(.closeParen)
            case .closeSquare, .closeParen:
                guard open.last == token.kind else { return nil }
                open.removeLast()
                out.append(token.kind == .closeSquare ? 0x5D : 0x29)
            case .whitespace: break
            case .atKeyword, .badString, .url, .badURL, .cdo, .cdc, .semicolon, .openCurly, .closeCurly:
                return nil
            }
        }
        return open.isEmpty ? out : nil
    }

    func appendNameCharacter(_ c: UInt8, to out: inout [UInt8]) {
        if c >= 0x80 || isASCIIAlphanumeric(c) || c == hyphen || c == UInt8(ascii: "_") {
            out.append(c)
        } else {
            out += Array("\\\(String(c, radix: 16)) ".utf8)
        }
    }

    func identifierTail(_ value: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for c in value { appendNameCharacter(c, to: &out) }
        return out
    }

    func identifier(_ value: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for (index, c) in value.enumerated() {
            let leadingDigit = isASCIIDigit(c) && (index == 0 || (index == 1 && value[0] == hyphen))
            if leadingDigit {
                out += Array("\\\(String(c, radix: 16)) ".utf8)
            } else if index == 0 && c == hyphen && value.count == 1 {
                out += Array("\\-".utf8)
            } else {
                appendNameCharacter(c, to: &out)
            }
        }
        return out
    }

    /// A string in double quotes; `"`, `\`, `<`, `>`, `*`, `@` and controls hex-escaped, so a
    /// string can never end a `<style>` element nor look like a comment or an at-rule.
    func string(_ value: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [quotationMark]
        for c in value {
            if c < 0x20 || c == 0x7F || c == quotationMark || c == 0x5C || c == lessThan || c == greaterThan || c == 0x2A || c == 0x40 {
                out += Array("\\\(String(c, radix: 16)) ".utf8)
            } else {
                out.append(c)
            }
        }
        out.append(quotationMark)
        return out
    }
}
