import Testing
@testable import MailCore

/// Address headers (RFC 5322 3.4): only the addr-specs come out; anything unparsable is `nil`.
@Suite struct AddressListTests {
    static func texts(_ value: String, allowUTF8: Bool = true) -> [String?] {
        AddressList.addresses(in: value, allowUTF8: allowUTF8).map { $0?.description }
    }

    @Test(arguments: [
        ("alice@mail.i2p", "alice@mail.i2p"),
        ("  alice@mail.i2p  ", "alice@mail.i2p"),
        ("<alice@mail.i2p>", "alice@mail.i2p"),
        ("< alice@mail.i2p >", "alice@mail.i2p"),
        ("Alice <alice@mail.i2p>", "alice@mail.i2p"),
        ("Alice Smith <alice@mail.i2p>", "alice@mail.i2p"),
        ("\"Alice Smith\" <alice@mail.i2p>", "alice@mail.i2p"),
        ("\"Doe, John\" <j@x>", "j@x"),
        ("\"Doe, John\"<j@x>", "j@x"),
        ("\"Re: team\" <j@x>", "j@x"),
        ("\"<fake@evil>\" <real@mail.i2p>", "real@mail.i2p"),
        ("\"a \\\"quoted\\\", name\" <j@x>", "j@x"),
        ("alice@mail.i2p (Alice)", "alice@mail.i2p"),
        ("(comment) alice@mail.i2p", "alice@mail.i2p"),
        ("alice@mail.i2p (outer (nested (deeper)) still comment)", "alice@mail.i2p"),
        ("Alice (the, one) <alice@mail.i2p>", "alice@mail.i2p"),
        ("alice@mail.i2p (comment with \\) escaped paren)", "alice@mail.i2p"),
        ("Alice <alice@MAIL.I2P>", "alice@mail.i2p"),
        ("Jörg <jorg@example.com>", "jorg@example.com"),
        ("\"john doe\"@example.com", "\"john doe\"@example.com"),
        ("\"a:b\"@example.com", "\"a:b\"@example.com"),
        ("\"a,b\"@example.com", "\"a,b\"@example.com"),
        ("\"a(b)\"@example.com", "\"a(b)\"@example.com"),
        ("user@[192.0.2.1]", "user@[192.0.2.1]"),
        ("<user@[IPv6:2001:db8::1]>", "user@[ipv6:2001:db8::1]"),
    ])
    func singleAddress(value: String, expected: String) {
        #expect(Self.texts(value) == [expected])
    }

    @Test func severalAddresses() {
        #expect(Self.texts("a@x, \"B, b\" <b@y>, c@z (C), D <d@w>") == ["a@x", "b@y", "c@z", "d@w"])
    }

    @Test func emptyEntriesAreSkipped() {
        #expect(Self.texts("a@x,, ,b@y,") == ["a@x", "b@y"])
        #expect(Self.texts("").isEmpty)
        #expect(Self.texts("   ").isEmpty)
        #expect(Self.texts("(only a comment)").isEmpty)
    }

    @Test func groupMembersAreReturned() {
        #expect(Self.texts("team: a@x, B <b@y>;") == ["a@x", "b@y"])
        #expect(Self.texts("Team (the best): \"A, a\" <a@x>, b@y (B);") == ["a@x", "b@y"])
    }

    @Test func groupFollowedByAnotherAddress() {
        #expect(Self.texts("team: a@x;, c@z") == ["a@x", "c@z"])
    }

    @Test func emptyGroupYieldsNothing() {
        #expect(Self.texts("undisclosed-recipients:;").isEmpty)
        #expect(Self.texts("undisclosed-recipients: ;").isEmpty)
    }

    @Test func quotedGroupNameWithColon() {
        #expect(Self.texts("\"a: team\": a@x;") == ["a@x"])
    }

    @Test func colonInUnquotedDisplayNameBeforeAngleIsTreatedAsGroupName() {
        #expect(Self.texts("Re: Alice <alice@mail.i2p>") == ["alice@mail.i2p"])
    }

    @Test(arguments: [
        "not an address",
        "alice",
        "alice@",
        "@mail.i2p",
        "Alice <alice@mail.i2p",
        "Alice <>",
        "<a..b@x>",
        "a@x@y",
    ])
    func garbageYieldsNil(value: String) {
        let result = AddressList.addresses(in: value)
        #expect(result.count == 1)
        #expect(result.first == .some(nil))
    }

    @Test func unquotedCommaInDisplayNameSplitsIntoANilAndAnAddress() {
        // `Doe, John <j@x>` is not valid RFC 5322: the caller sees an entry it must refuse.
        #expect(Self.texts("Doe, John <j@x>") == [nil, "j@x"])
    }

    @Test func garbageAmongGoodEntriesKeepsItsPosition() {
        #expect(Self.texts("a@x, junk, b@y") == ["a@x", nil, "b@y"])
    }

    @Test func utf8AddressesDependOnAllowUTF8() {
        #expect(Self.texts("jörg@exämple.com") == ["jörg@exämple.com"])
        #expect(Self.texts("jörg@exämple.com", allowUTF8: false) == [nil])
        #expect(Self.texts("Jörg <jorg@example.com>", allowUTF8: false) == ["jorg@example.com"])
    }

    @Test func returnedValuesAreParsedAddresses() throws {
        let result = AddressList.addresses(in: "Alice <Alice.Smith@Mail.I2P>")
        let address = try #require(result.first ?? nil)
        #expect(address.localPart == "Alice.Smith")
        #expect(address.domain == "mail.i2p")
        #expect(address.canonical == "alice.smith@mail.i2p")
    }

    // MARK: Known defects

    /// A bare address literal holds colons (RFC 5321 4.1.3 IPv6-address-literal). `EmailAddress`
    /// accepts it, but `AddressList` takes the first colon for a group name.
    @Test func bareIPv6AddressLiteralIsNotAGroup() {
        #expect(EmailAddress("user@[IPv6:2001:db8::1]") != nil)
        #expect(Self.texts("user@[IPv6:2001:db8::1]") == ["user@[ipv6:2001:db8::1]"])
    }

    /// ';' is qtext: a quoted local part may hold it. The address returned must be the one written.
    @Test func semicolonInQuotedLocalPartIsKept() {
        #expect(EmailAddress("\"a;b\"@example.com") != nil)
        #expect(Self.texts("\"a;b\"@example.com") == ["\"a;b\"@example.com"])
    }

    // MARK: Helpers

    @Test func stripCommentsKeepsQuotedParentheses() {
        #expect(AddressList.stripComments("\"(not a comment)\" <a@b> (a comment)") == "\"(not a comment)\" <a@b> ")
        #expect(AddressList.stripComments("a(b(c)d)e") == "ae")
        #expect(AddressList.stripComments("unbalanced) paren") == "unbalanced) paren")
    }

    @Test func splitEntriesRespectsQuotesAndAngles() {
        #expect(AddressList.splitEntries("a, \"b, c\" <d>, <e,f>") == ["a", " \"b, c\" <d>", " <e,f>"])
    }
}
