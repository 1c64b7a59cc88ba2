// libFuzzer entry point for the HTML mail sanitiser (SPEC 10): any bytes, as an HTML body.
// Built and run by fuzz/run (swiftc -sanitize=fuzzer,address). Traps on an invariant failure:
// - the output holds only allowlisted tags and attributes, in the sanitiser's own form
//   (every `<` starts a tag, attribute values double-quoted);
// - kept `href`s are http/https/mailto, kept `src`s cid or data:image; no `on…` attribute;
// - no CSS (style attributes and elements) holds url(, image(, expression(, @import, behavior,
//   binding, a comment, or `<`;
// - sanitising the output again changes nothing and removes nothing (a fixed point).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTMLSanitiser(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let sanitiser = HTMLSanitiser()
    let first = sanitiser.sanitiseBytes(UnsafeBufferPointer(start: data, count: size))
    checkAllowlist(first.html)
    let second = sanitiser.sanitise(first.html)
    guard second == HTMLSanitiser.Result(html: first.html) else {
        fatalError("not a fixed point: \(first.html.debugDescription) -> \(second)")
    }
    return 0
}

private func lower(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
    bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
}

private func holds(_ haystack: [UInt8], _ needle: String) -> Bool {
    let n = Array(needle.utf8)
    guard haystack.count >= n.count else { return false }
    for i in 0...(haystack.count - n.count) where haystack[i..<(i + n.count)].elementsEqual(n) { return true }
    return false
}

private func checkCSS(_ text: ArraySlice<UInt8>, _ out: String) {
    // Entity-escaped quotes in style attributes read back as `&quot;`; whitespace is irrelevant.
    let css = lower(text).filter { $0 > 0x20 }
    for bad in ["url(", "image(", "expression(", "@import", "@font-face", "behavior", "binding", "/*", "<"] {
        if holds(css, bad) { fatalError("\(bad) in CSS of \(out.debugDescription)") }
    }
}

private func checkAllowlist(_ out: String) {
    let bytes = Array(out.utf8)
    let lt = UInt8(ascii: "<"), gt = UInt8(ascii: ">"), space = UInt8(ascii: " "), quote = UInt8(ascii: "\"")
    var i = 0
    func fail(_ why: String) -> Never { fatalError("\(why) in \(out.debugDescription)") }
    while i < bytes.count {
        if bytes[i] == gt { fail("bare >") }
        guard bytes[i] == lt else { i += 1; continue }
        var j = i + 1
        let closing = j < bytes.count && bytes[j] == UInt8(ascii: "/")
        if closing { j += 1 }
        let nameStart = j
        while j < bytes.count && bytes[j] != space && bytes[j] != gt { j += 1 }
        let name = String(decoding: bytes[nameStart..<j], as: UTF8.self)
        guard HTMLSanitiser.allowedElements.contains(name) || name == "style" else { fail("tag \(name)") }
        var keptLink = false, rel = false, target = false
        while j < bytes.count && bytes[j] == space {
            if closing { fail("attribute on end tag") }
            j += 1
            let attributeStart = j
            while j < bytes.count && bytes[j] != UInt8(ascii: "=") { j += 1 }
            let attribute = String(decoding: bytes[attributeStart..<j], as: UTF8.self)
            guard j + 1 < bytes.count, bytes[j + 1] == quote else { fail("unquoted \(attribute)") }
            j += 2
            let valueStart = j
            while j < bytes.count && bytes[j] != quote { j += 1 }
            guard j < bytes.count else { fail("unterminated \(attribute)") }
            let value = lower(bytes[valueStart..<j])
            if value.contains(lt) || value.contains(gt) { fail("raw < or > in \(attribute)") }
            j += 1
            let text = String(decoding: value, as: UTF8.self)
            switch attribute {
            case "href" where name == "a":
                guard text.hasPrefix("http:") || text.hasPrefix("https:") || text.hasPrefix("mailto:") else { fail("href \(text)") }
                keptLink = true
            case "src" where name == "img":
                let image = ["data:image/png", "data:image/gif", "data:image/jpeg", "data:image/webp"].contains { text.hasPrefix($0) }
                guard text.hasPrefix("cid:") || image else { fail("src \(text)") }
            case "rel" where name == "a" && text == "noopener noreferrer": rel = true
            case "target" where name == "a" && text == "_blank": target = true
            case "type" where ["ol", "ul", "li"].contains(name): break
            case "style": checkCSS(bytes[valueStart..<(j - 1)], out)
            default:
                guard HTMLSanitiser.allowedAttributes.contains(attribute), name != "style" else { fail("attribute \(attribute) on \(name)") }
            }
        }
        if keptLink != rel || keptLink != target { fail("link without rel/target") }
        guard j < bytes.count, bytes[j] == gt else { fail("tag \(name) not closed") }
        i = j + 1
        if name == "style" && !closing {
            let close = Array("</style>".utf8)
            var end = i
            while end + close.count <= bytes.count && !bytes[end..<(end + close.count)].elementsEqual(close) { end += 1 }
            guard end + close.count <= bytes.count else { fail("style not closed") }
            checkCSS(bytes[i..<end], out)
            i = end
        }
    }
}
