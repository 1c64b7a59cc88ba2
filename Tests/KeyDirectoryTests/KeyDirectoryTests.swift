// The key book's pure core (KEYS-1, KEYS-2) against real gpg keys (Fixtures.swift), a hand-made
// v6 key and crafted bad input. The fixtures were made with gpg 2.2.40:
//   gpg --quick-generate-key 'Alice <alice@mail.i2p>' rsa2048 cert,sign never; --quick-add-key FPR rsa2048 encr
//   gpg --quick-generate-key 'Bob Builder <bob@mail.i2p>' ed25519 cert,sign never; --quick-add-key FPR cv25519 encr
//   gpg --faked-system-time 20200101T000000 --quick-generate-key dave@mail.i2p ed25519 cert,sign 1d
//   gpg --quick-generate-key 'Erin <erin@mail.i2p>' ed25519; --quick-add-uid FPR 'Erin Elsewhere <erin@example.org>'
//   gpg -u CAROL --quick-sign-key BOB (Carol's certification on Bob's user ID)
//   gpg --export-secret-keys bob@mail.i2p; gpg --export alice@mail.i2p carol@mail.i2p

import Testing
@testable import KeyDirectory

private let now: Int64 = 1_800_000_000  // 2027-01-15, after the fixtures were made

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func refusal(_ upload: [UInt8], address: String = "alice@mail.i2p") -> KeyRefusal? {
    do {
        _ = try KeyPublication.prepare(upload: upload, address: address, now: now)
        return nil
    } catch {
        return error
    }
}

private func dearmored(_ text: String) throws -> [UInt8] {
    try Armor.decode(bytes(text)).data
}

@Suite struct ParsingRealKeys {
    @Test func rsaKeyWithSubkey() throws {
        let key = try KeyPublication.prepare(upload: bytes(Fixtures.aliceRSA), address: "alice@mail.i2p", now: now)
        #expect(key.info.version == 4)
        #expect(key.info.fingerprint == "5DD92C520D67D0F45A31C50C3F10EAAB39345BE6")
        #expect(key.info.keyID == "3F10EAAB39345BE6")
        #expect(key.info.algorithm == "RSA")
        #expect(key.info.algorithmID == 1)
        #expect(key.info.bits == 2048)
        #expect(key.info.created == 1796000888)
        #expect(key.info.expires == nil)
        #expect(key.info.revoked == false)
        #expect(key.info.userIDs == ["Alice <alice@mail.i2p>"])
        #expect(key.info.subkeys.count == 1)
        #expect(key.info.subkeys.first?.fingerprint == "FD00D6BC250E1F64918BB7250FA8D8E3AF4347D0")
        #expect(key.info.subkeys.first?.keyID == "0FA8D8E3AF4347D0")
        #expect(key.info.subkeys.first?.bits == 2048)
        #expect(key.info.subkeys.first?.created == 1796000889)
    }

    @Test func ed25519WithCv25519Subkey() throws {
        let key = try KeyPublication.prepare(upload: bytes(Fixtures.bobEd25519), address: "bob@mail.i2p", now: now)
        #expect(key.info.fingerprint == "1F8EE73E320338119DDF17466F39F8A13A73923F")
        #expect(key.info.keyID == "6F39F8A13A73923F")
        #expect(key.info.algorithm == "EdDSA (legacy)")
        #expect(key.info.algorithmID == 22)
        #expect(key.info.curve == "Ed25519")
        #expect(key.info.bits == 255)
        #expect(key.info.userIDs == ["Bob Builder <bob@mail.i2p>"])
        let subkey = try #require(key.info.subkeys.first)
        #expect(subkey.fingerprint == "A1017E8FBCF5645F192C8E9A7D0B7BEB8C08D44B")
        #expect(subkey.algorithm == "ECDH")
        #expect(subkey.algorithmID == 18)
        #expect(subkey.curve == "Curve25519")
        #expect(subkey.bits == 255)
    }

    @Test func binaryUploadGivesTheSameResult() throws {
        let armored = try KeyPublication.prepare(upload: bytes(Fixtures.aliceRSA), address: "alice@mail.i2p", now: now)
        let binary = try KeyPublication.prepare(upload: try dearmored(Fixtures.aliceRSA), address: "alice@mail.i2p", now: now)
        #expect(armored == binary)
    }

    @Test func armourWithByteOrderMarkAndSurroundingText() throws {
        let pasted = [0xEF, 0xBB, 0xBF] + bytes("Here is my key:\r\n\r\n" + Fixtures.aliceRSA + "\r\nThanks!\r\n")
        let key = try KeyPublication.prepare(upload: pasted, address: "alice@mail.i2p", now: now)
        #expect(key.info.fingerprint == "5DD92C520D67D0F45A31C50C3F10EAAB39345BE6")
    }

    @Test func addressMatchIsCaseInsensitive() throws {
        let key = try KeyPublication.prepare(upload: bytes(Fixtures.aliceRSA), address: "Alice@Mail.I2P", now: now)
        #expect(key.info.userIDs == ["Alice <alice@mail.i2p>"])
    }

    @Test func expiryComesFromTheSelfSignature() throws {
        let info = try KeyPublication.inspect(bytes(Fixtures.daveExpired))
        #expect(info.fingerprint == "0C3C4C53AE94053003E497CA28A1EBBF649EAD77")
        #expect(info.created == 1577836800)
        #expect(info.expires == 1577923200)
        #expect(info.isExpired(now: now))
        #expect(info.userIDs == ["dave@mail.i2p"])
    }

    @Test func expiredKeyIsRefused() {
        #expect(refusal(bytes(Fixtures.daveExpired), address: "dave@mail.i2p") == .expired(at: 1577923200))
        // Before it expired, the bare user ID "dave@mail.i2p" matches.
        #expect(throws: Never.self) {
            try KeyPublication.prepare(upload: bytes(Fixtures.daveExpired), address: "dave@mail.i2p", now: 1577836900)
        }
    }

    @Test func v6KeyFingerprintAndKeyID() throws {
        // Hand-made (gpg 2.2 cannot make v6 keys): Ed25519 primary with fixed key bytes, a
        // direct-key signature with a 10-year expiry, "Vera <vera@mail.i2p>" with a positive
        // certification, an X25519 subkey with its binding. Signatures carry zero bytes (not
        // verified). Expected values computed independently with Python's hashlib:
        // SHA-256(0x9B || 4-octet length || body).
        let key = try KeyPublication.prepare(upload: V6Fixture.key, address: "vera@mail.i2p", now: now)
        #expect(key.info.version == 6)
        #expect(key.info.fingerprint == "BD31A718C1711A830B4FA1A2090D96C4F6FD3B39526095281E4D66D4A8865300")
        #expect(key.info.keyID == "BD31A718C1711A83")
        #expect(key.info.algorithm == "Ed25519")
        #expect(key.info.bits == 255)
        #expect(key.info.created == 1711276032)
        #expect(key.info.expires == 2026636032)
        #expect(key.info.subkeys.map(\.fingerprint) == ["BC8BAE4A95E209AE927E4D55676613A9B5BB7E9C84ECCD5024E241A85519E56B"])
        #expect(key.info.subkeys.first?.algorithm == "X25519")
        #expect(key.binary == V6Fixture.key)  // already minimal: nothing stripped, headers the same
    }

    @Test func v6KeyPacketAlone() throws {
        let packet = OpenPGPPacket(tag: 6, body: V6Fixture.primaryBody)
        let key = try KeyPacket(body: packet.body, packet: 1)
        #expect(hex(key.fingerprint) == "BD31A718C1711A830B4FA1A2090D96C4F6FD3B39526095281E4D66D4A8865300")
        // A v6 key whose stated material length is wrong.
        var wrong = V6Fixture.primaryBody
        wrong[9] = 31
        #expect(throws: KeyRefusal.self) { try KeyPacket(body: wrong, packet: 1) }
    }
}

@Suite struct Filtering {
    @Test func foreignUserIDIsStripped() throws {
        let key = try KeyPublication.prepare(upload: bytes(Fixtures.erinTwoUIDs), address: "erin@mail.i2p", now: now)
        #expect(key.info.fingerprint == "48053E61861E23A9A7FF193CECF6717040D8867B")
        #expect(key.info.userIDs == ["Erin <erin@mail.i2p>"])
        let all = try KeyPublication.inspect(bytes(Fixtures.erinTwoUIDs))
        #expect(all.userIDs.count == 2)
        let packets = try OpenPGPPacketReader.read(key.binary)
        #expect(!packets.contains { $0.body == Array("Erin Elsewhere <erin@example.org>".utf8) })
        #expect(packets.map(\.tag) == [6, 13, 2])
    }

    @Test func thirdPartyCertificationIsStripped() throws {
        let original = try OpenPGPPacketReader.read(try dearmored(Fixtures.bobCertifiedByCarol))
        #expect(original.map(\.tag) == [6, 13, 2, 2, 14, 2])
        let key = try KeyPublication.prepare(upload: bytes(Fixtures.bobCertifiedByCarol), address: "bob@mail.i2p", now: now)
        let packets = try OpenPGPPacketReader.read(key.binary)
        #expect(packets.map(\.tag) == [6, 13, 2, 14, 2])
        let carol: [UInt8] = [0x81, 0x05, 0x7E, 0x46, 0xDD, 0xAC, 0x48, 0x03]
        for packet in packets where packet.tag == PacketTag.signature {
            let signature = try SignaturePacket(body: packet.body, packet: 0)
            #expect(signature.issuerKeyID != carol)
            #expect(signature.issuerKeyID == [0x6F, 0x39, 0xF8, 0xA1, 0x3A, 0x73, 0x92, 0x3F])
        }
        // Bob's own signature is kept byte for byte.
        #expect(packets[2] == original[2])
        #expect(packets[4] == original[5])
    }

    @Test func preparationIsIdempotent() throws {
        for (fixture, address) in [(Fixtures.aliceRSA, "alice@mail.i2p"), (Fixtures.erinTwoUIDs, "erin@mail.i2p"), (Fixtures.bobCertifiedByCarol, "bob@mail.i2p")] {
            let once = try KeyPublication.prepare(upload: bytes(fixture), address: address, now: now)
            let twice = try KeyPublication.prepare(upload: once.binary, address: address, now: now)
            #expect(once == twice)
            #expect(try Armor.decode(bytes(once.armored)).data == once.binary)
        }
    }

    @Test func userAttributesTrustAndMarkerPacketsAreDropped() throws {
        var upload = try dearmored(Fixtures.bobEd25519)
        let packets = try OpenPGPPacketReader.read(upload)
        upload = OpenPGPPacket(tag: 10, body: Array("PGP".utf8)).serialized + packets[0].serialized
            + OpenPGPPacket(tag: 12, body: [0, 0]).serialized + packets[1].serialized + packets[2].serialized
            + OpenPGPPacket(tag: 17, body: [0x10, 1, 0xFF, 0xD8, 0xFF]).serialized + packets[2].serialized
            + packets[3].serialized + packets[4].serialized
        let key = try KeyPublication.prepare(upload: upload, address: "bob@mail.i2p", now: now)
        #expect(try OpenPGPPacketReader.read(key.binary).map(\.tag) == [6, 13, 2, 14, 2])
    }

    @Test func subkeyWithoutBindingIsDropped() throws {
        let packets = try OpenPGPPacketReader.read(try dearmored(Fixtures.bobEd25519))
        let upload = packets[0...3].flatMap(\.serialized)  // the subkey's binding left out
        let key = try KeyPublication.prepare(upload: upload, address: "bob@mail.i2p", now: now)
        #expect(key.info.subkeys.isEmpty)
    }

    @Test func userIDWithoutSelfSignatureIsRefused() throws {
        let packets = try OpenPGPPacketReader.read(try dearmored(Fixtures.bobCertifiedByCarol))
        // Only Carol's certification on the user ID.
        let upload = [packets[0], packets[1], packets[3]].flatMap(\.serialized)
        #expect(refusal(upload, address: "bob@mail.i2p") == .noSelfSignature(userID: "Bob Builder <bob@mail.i2p>"))
    }

    @Test func keyWithoutTheAddressIsRefused() throws {
        let refused = try #require(refusal(bytes(Fixtures.aliceRSA), address: "mallory@mail.i2p"))
        #expect(refused == .noMatchingUserID(address: "mallory@mail.i2p", found: ["Alice <alice@mail.i2p>"]))
        #expect(refused.description.contains("no user ID with your address mallory@mail.i2p"))
        // A longer address containing the account's is no match.
        #expect(refusal(bytes(Fixtures.aliceRSA), address: "ice@mail.i2p") != nil)
    }

    @Test func addressExtraction() {
        #expect(addressOf(Array("Alice <Alice@Mail.i2p>".utf8)) == "alice@mail.i2p")
        #expect(addressOf(Array("  alice@mail.i2p ".utf8)) == "alice@mail.i2p")
        #expect(addressOf(Array("A <b> <alice@mail.i2p>".utf8)) == "alice@mail.i2p")
        #expect(addressOf(Array("Alice (x) <alice@mail.i2p".utf8)) != "alice@mail.i2p")
    }
}

@Suite struct Refusals {
    @Test func secretKeyArmour() {
        let refused = refusal(bytes(Fixtures.bobSecret), address: "bob@mail.i2p")
        #expect(refused == .secretKey)
        #expect(refused?.description == "This is a secret key: never upload it; export the public key with gpg --export --armor ADDRESS")
    }

    @Test func secretKeyBinaryAndRelabelled() throws {
        let binary = try dearmored(Fixtures.bobSecret)
        #expect(refusal(binary, address: "bob@mail.i2p") == .secretKey)
        let relabelled = Armor.encode(binary)  // a public key block holding a secret key
        #expect(refusal(bytes(relabelled), address: "bob@mail.i2p") == .secretKey)
        // A secret subkey after a public primary.
        let packets = try OpenPGPPacketReader.read(try dearmored(Fixtures.bobEd25519))
        let mixed = packets[0].serialized + [0x9D, 0x01, 0x04]
        #expect(refusal(mixed, address: "bob@mail.i2p") == .secretKey)
    }

    @Test func twoKeys() throws {
        #expect(refusal(bytes(Fixtures.aliceAndCarol)) == .multipleKeys)
        let two = Fixtures.bobEd25519 + "\n" + Fixtures.aliceRSA
        #expect(refusal(bytes(two)) == .multipleKeys)
        #expect(refusal(bytes(Fixtures.aliceAndCarol))?.description.contains("one key at a time") == true)
    }

    @Test func truncatedPackets() throws {
        let binary = try dearmored(Fixtures.aliceRSA)
        for cut in [1, 2, 3, 50, binary.count - 1] {
            let refused = refusal(Array(binary.prefix(cut)))
            guard case .truncated? = refused else {
                Issue.record("cut at \(cut): \(String(describing: refused))")
                continue
            }
        }
        // Cut inside the key material but with a consistent length: the packet ends too early.
        let short = OpenPGPPacket(tag: 6, body: [4, 0, 0, 0, 1, 1, 0x08, 0x00, 0xFF]).serialized
        guard case .truncated? = refusal(short) else { Issue.record("short key material accepted"); return }
    }

    @Test func lengthBeyondTheEnd() {
        // New format, five-octet length of 2^31.
        #expect(refusal([0xC6, 0xFF, 0x80, 0, 0, 0, 4]) == .truncated(packet: 1, detail: "(public key) claims 2147483648 bytes but only 1 follow"))
        // Old format, two-octet length.
        guard case .truncated? = refusal([0x99, 0x01, 0x00, 4, 0, 0]) else { Issue.record("accepted"); return }
    }

    @Test func partialLengthOnAKeyPacket() {
        var upload: [UInt8] = [0xC6, 0xE9]  // partial: 512 bytes
        upload += [UInt8](repeating: 4, count: 512) + [0x01, 0x04]
        #expect(refusal(upload) == .partialLength(packet: 1, tag: 6))
        // Legacy indeterminate length on a key packet.
        guard case .malformed? = refusal([0x9B, 4, 0, 0, 0, 0, 1]) else { Issue.record("accepted"); return }
    }

    @Test func partialLengthsOnDataPacketsAreReadThenRefusedAsNotAKey() throws {
        // A literal data packet in two parts: 512 bytes partial, then 3 bytes.
        let upload: [UInt8] = [0xCB, 0xE9] + [UInt8](repeating: 0x61, count: 512) + [0x03, 0x62, 0x62, 0x62]
        let packets = try OpenPGPPacketReader.read(upload)
        #expect(packets.count == 1)
        #expect(packets.first?.body.count == 515)
        #expect(refusal(upload) == .notAKey(found: "literal data"))
        // A first partial part under 512 bytes is malformed.
        guard case .malformed? = refusal([0xCB, 0xE1, 0x61, 0x61, 0x01, 0x62]) else { Issue.record("accepted"); return }
    }

    @Test func unknownVersions() {
        #expect(refusal(OpenPGPPacket(tag: 6, body: [5, 0, 0, 0, 0, 22]).serialized)
            == .unsupportedVersion(packet: 1, what: "key", version: 5))
        #expect(refusal(OpenPGPPacket(tag: 6, body: [3, 0, 0, 0, 0, 0, 0, 1]).serialized)
            == .unsupportedVersion(packet: 1, what: "key", version: 3))
        let primary = OpenPGPPacket(tag: 6, body: V6Fixture.primaryBody).serialized
        let signature = OpenPGPPacket(tag: 2, body: [5, 0x13, 22, 8, 0, 0, 0, 0]).serialized
        #expect(refusal(primary + signature) == .unsupportedVersion(packet: 2, what: "signature", version: 5))
    }

    @Test func hugeUserID() throws {
        let packets = try OpenPGPPacketReader.read(try dearmored(Fixtures.bobEd25519))
        let uid = OpenPGPPacket(tag: 13, body: Array(("Bob <bob@mail.i2p>" + String(repeating: "x", count: 100_000)).utf8))
        let upload = packets[0].serialized + uid.serialized
        #expect(refusal(upload, address: "bob@mail.i2p") == .tooLarge(size: upload.count, limit: 65536))
        let big = OpenPGPPacket(tag: 13, body: Array(String(repeating: "x", count: 3000).utf8))
        #expect(refusal(packets[0].serialized + big.serialized + packets[1].serialized, address: "bob@mail.i2p")
            == .userIDTooLong(size: 3000, limit: 2048))
    }

    @Test func badChecksum() {
        // Change the checksum line's first character.
        var lines = Fixtures.aliceRSA.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let index = lines.firstIndex(where: { $0.hasPrefix("=") }) else { Issue.record("no checksum"); return }
        let original = lines[index]
        lines[index] = "=" + (original.dropFirst().first == "A" ? "B" : "A") + original.dropFirst(2)
        let refused = refusal(bytes(lines.joined(separator: "\n")))
        guard case .badChecksum? = refused else { Issue.record("\(String(describing: refused))"); return }
        #expect(refused?.description.contains("checksum is wrong") == true)
    }

    @Test func damagedDataIsCaughtByTheChecksum() {
        var lines = Fixtures.aliceRSA.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var line = Array(lines[5].utf8)
        line[10] = line[10] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        lines[5] = String(decoding: line, as: UTF8.self)
        guard case .badChecksum? = refusal(bytes(lines.joined(separator: "\n"))) else { Issue.record("accepted"); return }
    }

    @Test func missingChecksumIsAccepted() throws {
        let lines = Fixtures.aliceRSA.split(separator: "\n").filter { !$0.hasPrefix("=") }
        let key = try KeyPublication.prepare(upload: bytes(lines.joined(separator: "\r\n")), address: "alice@mail.i2p", now: now)
        #expect(key.info.fingerprint == "5DD92C520D67D0F45A31C50C3F10EAAB39345BE6")
        #expect(try !Armor.decode(bytes(lines.joined(separator: "\n"))).hadChecksum)
    }

    @Test func brokenArmour() {
        let noEnd = Fixtures.aliceRSA.replacingOccurrences("-----END PGP PUBLIC KEY BLOCK-----", "")
        guard case .armor? = refusal(bytes(noEnd)) else { Issue.record("no END accepted"); return }
        let badBase64 = Fixtures.aliceRSA.replacingOccurrences("mQEN", "mQ*N")
        guard case .armor? = refusal(bytes(badBase64)) else { Issue.record("bad base64 accepted"); return }
        let mismatched = Fixtures.aliceRSA.replacingOccurrences("END PGP PUBLIC KEY BLOCK", "END PGP MESSAGE")
        guard case .armor? = refusal(bytes(mismatched)) else { Issue.record("mismatched END accepted"); return }
    }

    @Test func otherArmour() {
        let message = "-----BEGIN PGP MESSAGE-----\n\nowGbwMvMwCE=\n-----END PGP MESSAGE-----\n"
        #expect(refusal(bytes(message)) == .wrongArmor(label: "PGP message (encrypted or signed data)"))
    }

    @Test func garbage() {
        #expect(refusal([]) == .empty)
        #expect(refusal(bytes(" \n\t")) == .empty)
        #expect(refusal(bytes("hello, this is my key")) == .notOpenPGP)
        #expect(refusal([0xFF, 0xFF, 0xFF]) != nil)
        #expect(refusal([0x80]) != nil)
        #expect(refusal(bytes("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n-----END PGP PUBLIC KEY BLOCK-----\n")) == .empty)
        // A signature alone.
        #expect(refusal(OpenPGPPacket(tag: 2, body: [4, 0, 1, 8, 0, 0, 0, 0, 0, 0, 0, 1, 0]).serialized) == .notAKey(found: "signature"))
        // An encrypted-data packet after a key.
        let packets = try? OpenPGPPacketReader.read(try dearmored(Fixtures.bobEd25519))
        if let packets {
            let upload = packets[0].serialized + OpenPGPPacket(tag: 18, body: [1, 2, 3]).serialized
            #expect(refusal(upload, address: "bob@mail.i2p") == .unexpectedPacket(packet: 2, found: "encrypted data"))
        }
    }

    @Test func tooManyPacketsAndSubkeys() throws {
        let packets = try OpenPGPPacketReader.read(try dearmored(Fixtures.bobEd25519))
        let manyTrust = packets.flatMap(\.serialized) + Array(repeating: OpenPGPPacket(tag: 12, body: [0]).serialized, count: 100).flatMap { $0 }
        #expect(refusal(manyTrust, address: "bob@mail.i2p") == .tooManyPackets(limit: 100))
        let manySubkeys = packets[0...2].flatMap(\.serialized) + Array(repeating: packets[3].serialized + packets[4].serialized, count: 17).flatMap { $0 }
        #expect(refusal(manySubkeys, address: "bob@mail.i2p") == .tooManySubkeys(count: 17, limit: 16))
    }

    @Test func everyPrefixOfARealKeyIsRefusedOrAcceptedWithoutTrapping() throws {
        let binary = try dearmored(Fixtures.bobCertifiedByCarol)
        for cut in 0..<binary.count {
            _ = refusal(Array(binary.prefix(cut)), address: "bob@mail.i2p")
        }
        // And every single-byte change.
        for index in 0..<binary.count {
            var changed = binary
            changed[index] ^= 0x5A
            _ = refusal(changed, address: "bob@mail.i2p")
        }
    }
}

@Suite struct Rendering {
    @Test func armourRoundTripWithChecksum() throws {
        let key = try KeyPublication.prepare(upload: bytes(Fixtures.aliceRSA), address: "alice@mail.i2p", now: now)
        #expect(key.armored.hasPrefix("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n"))
        #expect(key.armored.hasSuffix("\n-----END PGP PUBLIC KEY BLOCK-----\n"))
        let lines = key.armored.split(separator: "\n")
        #expect(lines.allSatisfy { $0.count <= 64 || $0.hasPrefix("-----") })
        let decoded = try Armor.decode(bytes(key.armored))
        #expect(decoded.hadChecksum)
        #expect(decoded.data == key.binary)
        // gpg's own armour of the same (unfiltered) key carries the same checksum as ours would.
        let gpgData = try dearmored(Fixtures.aliceRSA)
        let gpgChecksum = Fixtures.aliceRSA.split(separator: "\n").first { $0.hasPrefix("=") }
        #expect(Armor.encode(gpgData).split(separator: "\n").first { $0.hasPrefix("=") } == gpgChecksum)
    }

    @Test func crc24KnownValue() {
        #expect(Armor.crc24([]) == 0xB704CE)
        // gpg's checksum of the fixture, read from its "=" line.
        #expect(Base64.encode([0xFF, 0xEE]) == "/+4=")
        #expect(Base64.decode(Array("/+4=".utf8)) == [0xFF, 0xEE])
        #expect(Base64.decode(Array("/+4".utf8)) == [0xFF, 0xEE])
        #expect(Base64.decode(Array("/+=4".utf8)) == nil)
        #expect(Base64.decode(Array("A".utf8)) == nil)
    }

    @Test func hkpIndex() throws {
        let alice = try KeyPublication.prepare(upload: bytes(Fixtures.aliceRSA), address: "alice@mail.i2p", now: now)
        let bob = try KeyPublication.prepare(upload: bytes(Fixtures.bobEd25519), address: "bob@mail.i2p", now: now)
        let index = HKPFormat.machineReadableIndex([alice.info, bob.info], now: now)
        #expect(index == """
            info:1:2
            pub:5DD92C520D67D0F45A31C50C3F10EAAB39345BE6:1:2048:1796000888::
            uid:Alice <alice@mail.i2p>:::
            pub:1F8EE73E320338119DDF17466F39F8A13A73923F:22:255:1796000889::
            uid:Bob Builder <bob@mail.i2p>:::

            """)
    }

    @Test func hkpIndexFlagsAndEscaping() throws {
        let dave = try KeyPublication.inspect(bytes(Fixtures.daveExpired))
        #expect(HKPFormat.machineReadableIndex([dave], now: now) == """
            info:1:1
            pub:0C3C4C53AE94053003E497CA28A1EBBF649EAD77:22:255:1577836800:1577923200:e
            uid:dave@mail.i2p:::

            """)
        #expect(HKPFormat.escape("Zoë: 100% <z@mail.i2p>") == "Zo%C3%AB%3A 100%25 <z@mail.i2p>")
        #expect(HKPFormat.escape("a\nb") == "a%0Ab")
        #expect(HKPFormat.machineReadableIndex([], now: now) == "info:1:0\n")
    }

    @Test func wkdHashOfTheDraftExample() {
        #expect(wkdHash(localPart: "Joe.Doe") == "iy9q119eutrkn8s1mk4r39qejnbu3n5q")
        #expect(WKD.hash(localPart: "joe.doe") == "iy9q119eutrkn8s1mk4r39qejnbu3n5q")
        #expect(wkdHash(localPart: "alice").count == 32)
        #expect(WKD.zBase32([]) == "")
        #expect(WKD.zBase32([0xF0]) == "6y")  // 11110 000(00): alphabet[30], alphabet[0]
    }
}

enum V6Fixture {
    /// Made with a short Python script (struct + hashlib): see `v6KeyFingerprintAndKeyID`. Packets:
    /// public key v6 (Ed25519), direct-key signature v6 (key expiration 315360000 s), user ID,
    /// positive certification v6, public subkey v6 (X25519), subkey binding v6; every signature
    /// has creation time 0x66000000 and issuer fingerprint subpacket 33 = the primary's.
    static let key: [UInt8] = Base64.decode(Array("""
        xioGZgAAABsAAAAgAQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyDCngYfGwoAAAAvBQJmAAAABQkSzAMAIiEGvTGnGMFxGoMLT6GiCQ2WxPb9OzlSYJUoHk1m1KiGUwAAAAAAq80gAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAzRRWZXJhIDx2ZXJhQG1haWwuaTJwPsKYBhMbCgAAACkFAmYAAAAiIQa9MacYwXEagwtPoaIJDZbE9v07OVJglSgeTWbUqIZTAAAAAACrzSAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADOKgZmAAAAGQAAACBlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhMKYBhgbCgAAACkFAmYAAAAiIQa9MacYwXEagwtPoaIJDZbE9v07OVJglSgeTWbUqIZTAAAAAACrzSAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
        """.utf8)) ?? []
    /// The primary key packet's body: version 6, created 0x66000000, Ed25519, 32 bytes 1…32.
    static let primaryBody: [UInt8] = [6, 0x66, 0, 0, 0, 27, 0, 0, 0, 32] + (1...32).map { UInt8($0) }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        var result = ""
        var rest = self[...]
        while let range = rest.firstRange(of: target) {
            result += rest[..<range.lowerBound]
            result += replacement
            rest = rest[range.upperBound...]
        }
        result += rest
        return result
    }
}
