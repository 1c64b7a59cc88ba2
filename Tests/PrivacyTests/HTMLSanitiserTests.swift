import TestSupport
import Testing
@testable import Privacy

/// The HTML mail policy (SPEC 10): nothing in sanitised HTML loads anything or runs anything.
@Suite struct HTMLSanitiserTests {
    func clean(_ html: String) -> HTMLSanitiser.Result { HTMLSanitiser().sanitise(html) }
    func html(_ html: String) -> String { clean(html).html }

    /// What must never appear in output, whatever the input (lowercased comparison).
    static let forbidden = ["<script", "<iframe", "<object", "<embed", "<link", "<meta", "<base", "<svg", "<math",
                            "<form", "<input", "<video", "<audio", "<source", "<image", "<use", "javascript:",
                            "http://t", "//t/", "url(", "@import", "expression(", "srcset", "background=", "onerror",
                            "onload", "onclick", "xlink:href", "poster", "<frame", "<applet", "<textarea", "<title"]

    func expectClean(_ out: String, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
        let lower = out.lowercased()
        for bad in Self.forbidden {
            #expect(!lower.contains(bad), "\(bad) in \(out) \(comment?.description ?? "")", sourceLocation: sourceLocation)
        }
    }

    // MARK: Images

    @Test func trackingPixelIsRemovedAndCounted() {
        let result = clean(#"<p>Hi</p><img src="http://t/x.gif" width=1 height=1>"#)
        #expect(result.html == #"<p>Hi</p><img width="1" height="1">"#)
        #expect(result.removedRemoteReferences == 1)
        #expect(result.removedActiveContent == 0)
    }

    @Test func inlineImagesByContentIDAreKept() {
        let result = clean(#"<img src=cid:part1.abc@example alt="Logo">"#)
        #expect(result.html == #"<img src="cid:part1.abc@example" alt="Logo">"#)
        #expect(result.removedRemoteReferences == 0)
    }

    @Test func inlineRasterDataImagesAreKeptOthersNot() {
        #expect(html(#"<img src="data:image/png;base64,iVBORw0KGgo=">"#) == #"<img src="data:image/png;base64,iVBORw0KGgo=">"#)
        #expect(html(#"<img src="DATA:image/GIF,xyz">"#) == #"<img src="DATA:image/GIF,xyz">"#)
        let svg = clean(#"<img src="data:image/svg+xml,<svg onload=alert(1)>">"#)
        #expect(svg.html == "<img>")
        #expect(svg.removedActiveContent == 1)
        #expect(html(#"<img src="data:text/html,<script>alert(1)</script>">"#) == "<img>")
    }

    @Test(arguments: [
        #"<img src="https://t/x.png">"#, #"<img src="//t/x.png">"#, #"<img src="x.png">"#, #"<img src=" http://t/x">"#,
        #"<IMG SRC=HTTP://T/X>"#, #"<img src="&#104;ttp://t/x">"#, #"<image src="http://t/x">"#, #"<img src="cid:">"#,
    ])
    func everyOtherImageSourceIsRemoved(input: String) {
        let result = clean(input)
        #expect(result.html == "<img>")
        #expect(result.removedRemoteReferences == 1)
    }

    @Test func srcsetAndOtherImageAttributesAreNeverKept() {
        let result = clean(##"<img src="cid:a" srcset="http://t/a.png 1x, http://t/b.png 2x" lowsrc="http://t/l" dynsrc="http://t/d" longdesc="http://t/ld" usemap="#m">"##)
        #expect(result.html == #"<img src="cid:a">"#)
        #expect(result.removedRemoteReferences == 4)
    }

    @Test func pictureSourcesAreDropped() {
        let result = clean(#"<picture><source srcset="http://t/a.webp"><img src="cid:x"></picture>"#)
        #expect(result.html == #"<img src="cid:x">"#)
        #expect(result.removedRemoteReferences == 1)
    }

    // MARK: CSS

    @Test(arguments: [
        "background:url(http://t/)",
        "BACKGROUND: URL ( 'http://t' )",
        "background: u\\72l(http://t/)",
        "background: \\75\\72\\6c(http://t/)",
        "background: ur/**/l(http://t/)",
        "background: url(\"http://t/\")",
        "background-image: image-set(\"http://t/a.png\" 1x)",
        "background-image: -webkit-image-set(url(http://t/a.png) 1x)",
        "list-style-image: url(http://t/)",
        "content: url(http://t/)",
        "cursor: url(http://t/), auto",
        "background: src(\"http://t/\")",
        "background: url(http://t/ bad)",
    ])
    func remoteCSSIsRemoved(declaration: String) {
        let attribute = declaration.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "&quot;")
        let result = clean(#"<div style="color:red;\#(attribute);font-weight:bold">x</div>"#)
        #expect(result.html == #"<div style="color:red;font-weight:bold">x</div>"#)
        #expect(result.removedRemoteReferences == 1)
        expectClean(result.html)
    }

    @Test(arguments: [
        "width: expression(alert(1))", "width: e\\78pression(alert(1))", "width: exp/**/ression(alert(1))",
        "behavior: url(x.htc)", "-moz-binding: url(http://t/x.xml#b)", "beh\\61vior: x", "position: fixed",
        "POSITION:FIXED !important",
    ])
    func activeCSSIsRemoved(declaration: String) {
        let result = clean(#"<p style="\#(declaration);color:blue">x</p>"#)
        #expect(result.html == #"<p style="color:blue">x</p>"#)
        #expect(result.removedActiveContent == 1)
    }

    @Test func styleAttributeLeftEmptyIsDropped() {
        let result = clean(#"<table background="http://t/bg.gif" style="background-image:url('http://t/2')"><tr><td>x</td></tr></table>"#)
        #expect(result.html == "<table><tr><td>x</td></tr></table>")
        #expect(result.removedRemoteReferences == 2)
    }

    @Test func cssIsReserialised() {
        #expect(html(#"<span style="  COLOR : Red ;; font-family: 'Comic Sans', serif ; margin:0 auto ">x</span>"#)
            == #"<span style="color:Red;font-family:&quot;Comic Sans&quot;, serif;margin:0 auto">x</span>"#)
        #expect(html(#"<span style="color:red;{}foo;bar:baz{}; --x: 1; width: var(--x); font-size: 12px">x</span>"#)
            == #"<span style="color:red;font-size:12px">x</span>"#)
        #expect(html(#"<span style="font-family:&quot;a&lt;/style&gt;b&quot;">x</span>"#)
            == #"<span style="font-family:&quot;a\3c /style\3e b&quot;">x</span>"#)
    }

    @Test func styleElementDropsImportAndKeepsRules() {
        let result = clean("<style>@import url(http://t/a.css); p{color:red}</style><p>x</p>")
        #expect(result.html == "<style>p{color:red}</style><p>x</p>")
        #expect(result.removedRemoteReferences == 1)
    }

    @Test func styleElementDropsFontFaceNamespaceAndRemoteDeclarations() {
        let css = """
            <style type="text/css">
            @charset "utf-8";
            @namespace svg url(http://www.w3.org/2000/svg);
            @font-face { font-family: X; src: url(http://t/x.woff) }
            @IMPORT 'http://t/b.css';
            body { background: url(http://t/bg.png); margin: 0 }
            .a, td > p:first-child { color: #ff0000; background-image: url(http://t/c.png) }
            .empty { background: url(http://t/d.png) }
            @media screen and (max-width: 600px) { .a { width: 100% !important } @import url(http://t/e.css); }
            @page { margin: 1cm }
            </style>
            """
        let result = clean(css)
        #expect(result.html == "<style>body{margin:0}.a, td > p:first-child{color:#ff0000}@media screen and (max-width: 600px){.a{width:100% !important}}</style>")
        #expect(result.removedRemoteReferences == 6)
        expectClean(result.html)
    }

    @Test func styleElementCannotBeClosedFromInsideCSS() {
        // The HTML tokenizer ends the style element at the first </style>, whatever CSS thinks.
        let out = html(#"<style>p{font-family:"</style><script>alert(1)</script>"}</style>"#)
        expectClean(out)
        #expect(!out.contains("alert"))
        // A CSS escape cannot smuggle one in either.
        #expect(html(#"<style>p{font-family:"\3c/style\3e<img src=x>"}</style>"#) == #"<style>p{font-family:"\3c /style\3e \3c img src=x\3e "}</style>"#)
    }

    @Test func cssCasesFoundByFuzzing() {
        // A comment-split url( in a media query or selector drops the rule.
        let split = clean("<style>@media s:ur/**/l(http://t/){p{color:red}} a{color:blue}</style>")
        #expect(split.html == "<style>a{color:blue}</style>")
        #expect(split.removedRemoteReferences == 1)
        // Strings never hold `*`, `@`, `<` or `>` as written, nor `url(` however spaced.
        #expect(html(#"<p style="font-family:'a/*b@c<d'">x</p>"#) == #"<p style="font-family:&quot;a/\2a b\40 c\3c d&quot;">x</p>"#)
        #expect(html(#"<p style="font-family:'URL ( x'">x</p>"#) == "<p>x</p>")
    }

    @Test func stylesheetsAndPreloadsByLinkAreRemoved() {
        for input in [#"<link rel=stylesheet href=http://t/>"#, #"<link rel="dns-prefetch" href="//t">"#, #"<LINK REL=preload HREF='http://t/f'>"#] {
            let result = clean(input + "text")
            #expect(result.html == "text")
            #expect(result.removedRemoteReferences == 1)
        }
    }

    // MARK: Active content and frames

    @Test func scriptsAreRemovedWithTheirContent() {
        let result = clean("<p>a<script>alert(1)</script>b<SCRIPT src=http://t/x.js></SCRIPT>c</p>")
        #expect(result.html == "<p>abc</p>")
        #expect(result.removedActiveContent == 2)
        #expect(result.removedRemoteReferences == 1)
        #expect(html("<scr<script>ipt>alert(1)</script>") == "ipt&gt;alert(1)")
        #expect(html("<script>document.write('</scr'+'ipt>')</script>after") == "after")
        #expect(html("<script>never closed <b>bold</b>") == "")
        #expect(html("<noscript><img src=http://t/></noscript>x") == "x")
    }

    @Test func framesAreRemoved() {
        let result = clean("<iframe src=http://t/>inside</iframe>after")
        #expect(result.html == "after")
        #expect(result.removedRemoteReferences == 1)
        #expect(result.removedActiveContent == 1)
        #expect(html("<frameset><frame src=http://t/></frameset>x") == "x")
        #expect(html("<portal src=http://t/>p</portal>q") == "q")
    }

    @Test func svgAndMathAreRemovedWithTheirContent() {
        let result = clean("<svg><image href=http://t/ /><use xlink:href=http://t/#a /><script>alert(1)</script></svg>after")
        #expect(result.html == "after")
        #expect(result.removedRemoteReferences == 2)
        #expect(result.removedActiveContent == 1)
        #expect(html("<svg><svg></svg><image href=http://t/></svg>x") == "x")
        #expect(html("<svg/>kept") == "kept")
        #expect(html("<math><mi xlink:href=http://t/>x</mi></math>y") == "y")
    }

    @Test(arguments: [
        #"<a href="javascript:alert(1)">x</a>"#,
        #"<a href="jav&#x09;ascript:alert(1)">x</a>"#,
        #"<a href="jav&#9;ascript:alert(1)">x</a>"#,
        #"<a href=" JAVASCRIPT:alert(1)">x</a>"#,
        #"<a href="&#106;&#97;vascript:alert(1)">x</a>"#,
        #"<a href="&#0000106avascript:alert(1)">x</a>"#,
        "<a href=\"java\nscript:alert(1)\">x</a>",
        #"<a href="vbscript:msgbox(1)">x</a>"#,
        #"<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>"#,
        #"<a href="javascript&colon;alert(1)">x</a>"#,
    ])
    func scriptLinksAreRemoved(input: String) {
        let result = clean(input)
        #expect(result.html == "<a>x</a>")
        #expect(result.removedActiveContent == 1)
    }

    @Test func webLinksAreKeptAndOpenedApart() {
        #expect(html(#"<a href="https://example.org/?a=1&amp;b=2" title=t>x</a>"#)
            == #"<a href="https://example.org/?a=1&amp;b=2" title="t" rel="noopener noreferrer" target="_blank">x</a>"#)
        #expect(html(#"<a href=" MAILTO:bob@example.org ">x</a>"#)
            == #"<a href="MAILTO:bob@example.org" rel="noopener noreferrer" target="_blank">x</a>"#)
        // Relative links and fragments mean nothing in a mail: dropped, not counted.
        let relative = clean(##"<a href="#top" rel=opener target=_self ping="http://t/p">x</a>"##)
        #expect(relative.html == "<a>x</a>")
        #expect(relative.removedRemoteReferences == 1)
        #expect(relative.removedActiveContent == 0)
    }

    @Test(arguments: [
        #"<img src=cid:x onerror="alert(1)">"#, #"<img src=cid:x ONERROR=alert(1)>"#, #"<img src="cid:x"/onerror=alert(1)>"#,
        #"<img src=cid:x onload=alert(1)>"#, "<img src=cid:x\nonclick\n=\nalert(1)>", #"<img src=cid:x OnClick='alert(1)'>"#,
    ])
    func eventHandlersAreRemoved(input: String) {
        let result = clean(input)
        #expect(result.html == #"<img src="cid:x">"#)
        #expect(result.removedActiveContent == 1)
    }

    @Test func eventHandlersOnDroppedElementsAreCounted() {
        let result = clean(#"<body onload="alert(1)" background="http://t/bg.gif" style="background:url(http://t/b)">hi</body>"#)
        #expect(result.html == "hi")
        #expect(result.removedActiveContent == 1)
        #expect(result.removedRemoteReferences == 2)
    }

    @Test func refreshAndBaseAreRemoved() {
        let refresh = clean(#"<meta http-equiv=refresh content="0;url=http://t/"><meta charset=utf-8>x"#)
        #expect(refresh.html == "x")
        #expect(refresh.removedRemoteReferences == 1)
        let base = clean(#"<base href=http://t/><a href=x.html>x</a>"#)
        #expect(base.html == "<a>x</a>")
        #expect(base.removedRemoteReferences == 1)
    }

    @Test func formsAreRemovedButTheirTextStays() {
        let result = clean(#"<form action=http://t/ method=post>Name <input name=n value=v><textarea>t</textarea><select><option>o</select><button formaction=http://t/b>Send</button></form>"#)
        #expect(result.html == "Name Send")
        #expect(result.removedRemoteReferences == 2)
        #expect(result.removedActiveContent == 1)
    }

    @Test func pluginsAndMediaAreRemoved() {
        let result = clean(#"<object data=http://t/o><param name=movie value=x>fallback</object><embed src=http://t/e><applet code=A codebase=http://t/>a</applet><video poster=http://t/p src=http://t/v>v</video><audio><source src=http://t/a><track src=http://t/t></audio>end"#)
        #expect(result.html == "end")
        #expect(result.removedRemoteReferences == 7)
        #expect(result.removedActiveContent == 3)
    }

    // MARK: Tokenizer edge cases

    @Test func unclosedAndTruncatedMarkup() {
        #expect(html("<b>bold") == "<b>bold</b>")
        #expect(html(#"x<img src="http://t/"#) == "x")
        #expect(html(#"x<img src=http://t/"#) == "x")
        #expect(html(#"x<div title="a"#) == "x")
        #expect(html("x<div") == "x")
        #expect(html("x<") == "x&lt;")
        #expect(html("x</") == "x&lt;/")
        #expect(html("a < b > c") == "a &lt; b &gt; c")
        #expect(html("<div><p>a</div>b</p>") == "<div><p>a</p></div>b")
        #expect(html("</div></p>text<i>") == "text<i></i>")
    }

    @Test func commentsAndDeclarationsAreDropped() {
        let result = clean("<!DOCTYPE html><!--<img src=http://t/>-->a<!-- x -- y --!>b<!-->c<!--->d<?xml x?>e<![CDATA[f]]>g<![CDATA[x<y>z]]><!-- unterminated <img src=http://t/>")
        #expect(result.html == "abcdegz]]&gt;")
        #expect(result.removedRemoteReferences == 0)
        #expect(html("<!--[if mso]><img src=http://t/><![endif]-->x<![if !mso]>y<![endif]>") == "xy")
        #expect(html("</ foo>a</3>b") == "ab")
    }

    @Test func tableAndBodyBackgroundsAreRemoved() {
        let table = clean(##"<table background=http://t/ bgcolor="#fff" border=0 cellpadding=2><tr><td background="http://t/td" colspan=2>x</td></tr></table>"##)
        #expect(table.html == ##"<table bgcolor="#fff" border="0" cellpadding="2"><tr><td colspan="2">x</td></tr></table>"##)
        #expect(table.removedRemoteReferences == 2)
        let body = clean(#"<html><head><title>T</title></head><body background="http://t/" bgcolor=red><p>x</p></body></html>"#)
        #expect(body.html == "<p>x</p>")
        #expect(body.removedRemoteReferences == 1)
    }

    @Test func entitiesInTextStayText() {
        #expect(html("&lt;b&gt;not bold&lt;/b&gt;") == "&lt;b&gt;not bold&lt;/b&gt;")
        #expect(html("&#x3C;script&#x3E;alert(1)&#60;/script>") == "&lt;script&gt;alert(1)&lt;/script&gt;")
        #expect(html("Fish &amp; chips &copy; &eacute;t&eacute; &euro;5 &hellip;") == "Fish &amp; chips © été €5 …")
        #expect(html("&nosuch; & &amp &lt3 &#; &#x; &#128; &#0; &#x110000;") == "&amp;nosuch; &amp; &amp; &lt;3 &amp;#; &amp;#x; € \u{FFFD} \u{FFFD}")
        #expect(html("a\u{0}b") == "ab")
    }

    @Test func attributeValuesAreReescaped() {
        #expect(html(#"<span title='a"b<c>&amp;d'>x</span>"#) == #"<span title="a&quot;b&lt;c&gt;&amp;d">x</span>"#)
        #expect(html(#"<span title=a&copy=b>x</span>"#) == #"<span title="a&amp;copy=b">x</span>"#)
        #expect(html(#"<span title="a&copy;b">x</span>"#) == #"<span title="a©b">x</span>"#)
    }

    @Test func duplicateAttributesKeepTheFirst() {
        #expect(html(#"<img src=cid:a src=http://t/>"#) == #"<img src="cid:a">"#)
        #expect(html(#"<img src=http://t/ src=cid:a>"#) == "<img>")
        #expect(html(#"<p title=one TITLE=two>x</p>"#) == #"<p title="one">x</p>"#)
    }

    @Test func unknownAndDisallowedTagsKeepTheirText() {
        #expect(html("<blink>text</blink>") == "text")
        #expect(html("<marquee><b>x</b></marquee>") == "<b>x</b>")
        #expect(html(#"<p class=c id=i data-x=1 name=n>x</p>"#) == "<p>x</p>")
        #expect(html("<xmp><b>shown</b></xmp>") == "&lt;b&gt;shown&lt;/b&gt;")
        #expect(html("<plaintext><b>rest") == "&lt;b&gt;rest")
        #expect(html(#"<ol type="a" start=3><li type=i>x</ol><div type=x>y</div>"#) == #"<ol type="a" start="3"><li type="i">x</li></ol><div>y</div>"#)
    }

    @Test func invalidUTF8BecomesReplacementCharacters() {
        let result = HTMLSanitiser().sanitiseBytes([0x61, 0xC3, 0x3C, 0x62, 0x3E, 0xFF, 0x63, 0x3C, 0x2F, 0x62, 0x3E])
        #expect(result.html == "a\u{FFFD}<b>\u{FFFD}c</b>")
    }

    // MARK: Bounds

    @Test func deepNestingIsFlattenedQuickly() {
        let depth = 100_000
        let input = String(repeating: "<div>", count: depth) + "deep" + String(repeating: "</div>", count: depth)
        let clock = ContinuousClock()
        var result: HTMLSanitiser.Result?
        let elapsed = clock.measure { result = clean(input) }
        let out = result?.html ?? ""
        #expect(out == String(repeating: "<div>", count: HTMLSanitiser.maximumDepth) + "deep" + String(repeating: "</div>", count: HTMLSanitiser.maximumDepth))
        #expect(elapsed < .seconds(5))
        let unclosed = clean(String(repeating: "<b><i>", count: depth)).html
        #expect(unclosed.count == HTMLSanitiser.maximumDepth * 7)
        // Nested at-rules are kept three deep; anything deeper is dropped.
        #expect(html("<style>@media screen{@supports (display:grid){@media print{p{color:red}}}}</style>")
            == "<style>@media screen{@supports (display:grid){@media print{p{color:red}}}}</style>")
        #expect(html("<style>@media screen{@media screen{@media screen{@media screen{p{color:red}}}}}</style>") == "")
        let css = clean("<style>" + String(repeating: "@media screen{", count: depth) + "p{color:red}" + "</style>x").html
        #expect(css == "x")
    }

    @Test func largeInputsTakeLinearTime() {
        let unit = #"<td style="color:red;background:url(http://t/)" onclick=x><img src=http://t/ alt="a&amp;b">&lt;text&gt;</td>"#
        let clock = ContinuousClock()
        let small = clock.measure { _ = clean(String(repeating: unit, count: 2_000)) }
        let large = clock.measure { _ = clean(String(repeating: unit, count: 20_000)) }
        #expect(large < small * 30 + .milliseconds(200))
        for pathological in [String(repeating: "<a ", count: 50_000), String(repeating: "<!--", count: 50_000),
                             "<p title=\"" + String(repeating: "&", count: 100_000), "<style>" + String(repeating: "(", count: 100_000),
                             String(repeating: "<svg>", count: 50_000), "<p style=\"" + String(repeating: "u\\72l(", count: 20_000) + "\">"] {
            let elapsed = clock.measure { _ = clean(pathological) }
            #expect(elapsed < .seconds(3))
        }
    }

    // MARK: Properties

    static let fragments = [
        "<", ">", "/", "=", "\"", "'", " ", "\n", "\t", "&", ";", "#", "!", "-", "--", "?", "\0", "\\", "(", ")", "{", "}",
        ":", "*", "/*", "*/", "@", "é", "\u{FFFD}", "x", "1", "e", "img", "script", "style", "svg", "a", "p", "div",
        "table", "td", "iframe", "textarea", "title", "object", "math", "template", "plaintext", "xmp", "b", "image",
        "src", "href", "srcset", "background", "onerror", "OnLoad", "style", "xlink:href", "poster", "action",
        "http://t/", "//t/", "cid:x", "data:image/png,", "data:text/html,", "javascript:", "java&#x09;script:",
        "&#106;", "&lt;", "&amp;", "&quot;", "&#", "&#x", "url(", "u\\72l(", "ur", "l(", "expression(", "@import",
        "@font-face", "@media", "position", "fixed", "!--", "<!--", "-->", "<![CDATA[", "]]>", "<!", "</", "/>",
        "\\3c", "\\22 ", "image-set(", "behavior", "color", "red", "var(", "--x", "\r", "\u{0C}",
    ]

    func randomHTML(_ random: inout SplitMix64, count: Int) -> String {
        var text = ""
        for _ in 0..<count { text += Self.fragments.randomElement(using: &random)! }
        return text
    }

    /// The allowlist, checked on the output itself with a strict little reader of the output's own
    /// form (every `<` starts a tag, values are double-quoted).
    func expectOnlyAllowedMarkup(_ out: String, input: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let bytes = Array(out.utf8)
        var i = 0
        var inStyle = false
        while i < bytes.count {
            guard bytes[i] == UInt8(ascii: "<") else { i += 1; continue }
            var j = i + 1
            let closing = j < bytes.count && bytes[j] == UInt8(ascii: "/")
            if closing { j += 1 }
            let nameStart = j
            while j < bytes.count && bytes[j] != UInt8(ascii: " ") && bytes[j] != UInt8(ascii: ">") { j += 1 }
            let name = String(decoding: bytes[nameStart..<j], as: UTF8.self)
            #expect(HTMLSanitiser.allowedElements.contains(name) || name == "style", "tag \(name) from \(input.debugDescription)", sourceLocation: sourceLocation)
            if name == "style" { inStyle = !closing }
            // Attributes.
            while j < bytes.count && bytes[j] == UInt8(ascii: " ") {
                j += 1
                let attributeStart = j
                while j < bytes.count && bytes[j] != UInt8(ascii: "=") { j += 1 }
                let attribute = String(decoding: bytes[attributeStart..<j], as: UTF8.self)
                j += 2
                let valueStart = j
                while j < bytes.count && bytes[j] != UInt8(ascii: "\"") { j += 1 }
                let value = String(decoding: bytes[valueStart..<j], as: UTF8.self).lowercased()
                j += 1
                let allowed = HTMLSanitiser.allowedAttributes.contains(attribute)
                    || (attribute == "href" && name == "a" && (value.hasPrefix("http:") || value.hasPrefix("https:") || value.hasPrefix("mailto:")))
                    || (attribute == "src" && name == "img" && (value.hasPrefix("cid:") || value.hasPrefix("data:image/")))
                    || (attribute == "type" && ["ol", "ul", "li"].contains(name))
                    || (name == "a" && ((attribute == "rel" && value == "noopener noreferrer") || (attribute == "target" && value == "_blank")))
                #expect(allowed, "attribute \(attribute)=\(value) on \(name) from \(input.debugDescription)", sourceLocation: sourceLocation)
                if attribute == "style" {
                    let css = value.filter { !$0.isWhitespace }
                    for bad in ["url(", "expression(", "image(", "@import", "behavior", "binding", "/*"] {
                        #expect(!css.contains(bad), "\(bad) in style from \(input.debugDescription)", sourceLocation: sourceLocation)
                    }
                }
            }
            #expect(j < bytes.count && bytes[j] == UInt8(ascii: ">"), "tag not closed in \(out.debugDescription)", sourceLocation: sourceLocation)
            i = j + 1
            if inStyle {
                let closeTag = Array("</style>".utf8)
                var end = i
                while end + closeTag.count <= bytes.count && !bytes[end..<(end + closeTag.count)].elementsEqual(closeTag) { end += 1 }
                guard end + closeTag.count <= bytes.count else {
                    Issue.record("style not closed in \(out.debugDescription)", sourceLocation: sourceLocation)
                    return
                }
                let css = String(decoding: bytes[i..<end], as: UTF8.self).lowercased().filter { !$0.isWhitespace }
                #expect(!css.contains("<"), "< in style from \(input.debugDescription)", sourceLocation: sourceLocation)
                for bad in ["url(", "expression(", "image(", "@import", "@font-face", "behavior", "binding", "/*"] {
                    #expect(!css.contains(bad), "\(bad) in style from \(input.debugDescription)", sourceLocation: sourceLocation)
                }
                i = end
            }
        }
    }

    @Test func randomInputsNeverYieldActiveOrRemoteContentAndAreFixedPoints() {
        var random = SplitMix64(seed: 0x5EED_0010)
        for round in 0..<3_000 {
            let input = randomHTML(&random, count: Int.random(in: 1...80, using: &random))
            let first = clean(input)
            expectOnlyAllowedMarkup(first.html, input: input)
            let lower = first.html.lowercased()
            #expect(!lower.contains("<script"), "round \(round): \(input.debugDescription)")
            let second = clean(first.html)
            #expect(second == HTMLSanitiser.Result(html: first.html), "round \(round): \(input.debugDescription) -> \(first.html.debugDescription) -> \(second.html.debugDescription)")
        }
    }

    @Test func aLargeRandomInputIsSafeAndIdempotent() {
        var random = SplitMix64(seed: 42)
        let input = randomHTML(&random, count: 200_000)
        let first = clean(input)
        expectOnlyAllowedMarkup(first.html, input: "<large input>")
        #expect(first.removedRemoteReferences + first.removedActiveContent > 0)
        #expect(clean(first.html) == HTMLSanitiser.Result(html: first.html))
    }

    @Test func realisticNewsletterKeepsItsLayout() {
        let input = """
            <!DOCTYPE html><html><head><meta charset="utf-8"><title>News</title>
            <style>td { padding: 4px } .btn { background-color: #0a0; color: white }</style></head>
            <body style="margin:0"><table width="600" align="center" cellspacing="0"><tr><td class="x" style="font-family: Arial, sans-serif">
            <h1>Hello &amp; welcome</h1><p>Read <a href="https://example.org/a?utm=1" onclick="track()">more</a>.</p>
            <img src="https://t.example/open.gif?u=123" width="1" height="1" alt="">
            </td></tr></table></body></html>
            """
        let result = clean(input)
        #expect(result.html == "\n" + """
            <style>td{padding:4px}.btn{background-color:#0a0;color:white}</style>
            <table width="600" align="center" cellspacing="0"><tr><td style="font-family:Arial, sans-serif">
            <h1>Hello &amp; welcome</h1><p>Read <a href="https://example.org/a?utm=1" rel="noopener noreferrer" target="_blank">more</a>.</p>
            <img width="1" height="1" alt="">
            </td></tr></table>
            """)
        #expect(result.removedRemoteReferences == 1)
        #expect(result.removedActiveContent == 1)
    }
}
