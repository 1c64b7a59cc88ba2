// libFuzzer entry point for the key book's parser (KEYS-1): any bytes, as an uploaded key.
// Built and run by fuzz/run (swiftc -sanitize=fuzzer,address) together with every file of
// Sources/KeyDirectory except KeyHashing.swift: plain swiftc cannot import swift-crypto, so the
// `KeyHash` below stands in for it. It returns deterministic bytes of a digest's length; the
// parser, filter and renderers never read a digest's value, only carry it (fingerprints, key IDs,
// issuer comparison), so the stand-in reaches the same code. The real digests are swift-crypto's
// and are checked by the unit tests (gpg's fingerprints, the WKD example).

enum KeyHash {
    static func sha1(_ bytes: [UInt8]) -> [UInt8] { standIn(bytes, count: 20) }
    static func sha256(_ bytes: [UInt8]) -> [UInt8] { standIn(bytes, count: 32) }

    /// FNV-1a, stretched: not a cryptographic hash, only a deterministic one.
    private static func standIn(_ bytes: [UInt8], count: Int) -> [UInt8] {
        var state: UInt64 = 0xCBF29CE484222325
        for byte in bytes { state = (state ^ UInt64(byte)) &* 0x100000001B3 }
        return (0..<count).map { index in
            state = (state ^ UInt64(index)) &* 0x100000001B3
            return UInt8(truncatingIfNeeded: state >> 32)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOpenPGP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    let now: Int64 = 1_800_000_000

    // Armour: whatever decodes must encode and decode to the same data.
    if let block = try? Armor.decode(input) {
        let again = try? Armor.decode(Array(Armor.encode(block.data, label: block.label).utf8))
        precondition(again?.data == block.data, "armour round trip changed the data")
    }

    // Packets: whatever is read must be written and read back the same.
    if let packets = try? OpenPGPPacketReader.read(input) {
        let written = packets.flatMap(\.serialized)
        precondition((try? OpenPGPPacketReader.read(written)) == packets, "packet round trip changed the packets")
    }

    // Publication, for the address of the key's first user ID (so that keys reach the filter).
    var address = "alice@mail.i2p"
    if let info = try? KeyPublication.inspect(input) {
        _ = HKPFormat.machineReadableIndex([info], now: now)
        if let first = info.userIDs.first { address = addressOf(Array(first.utf8)) }
    }
    if let key = try? KeyPublication.prepare(upload: input, address: address, now: now) {
        // The published key is a fixed point, and its armour holds exactly its bytes.
        let again = try? KeyPublication.prepare(upload: key.binary, address: address, now: now)
        precondition(again == key, "preparing a prepared key changed it")
        precondition((try? Armor.decode(Array(key.armored.utf8)))?.data == key.binary, "armour of the key differs")
        precondition(key.info.userIDs.count == 1, "published more than one user ID")
        _ = HKPFormat.machineReadableIndex([key.info], now: now)
    }
    _ = WKD.hash(localPart: String(decoding: input.prefix(64), as: UTF8.self))
    return 0
}
