// The two digests the key book needs: SHA-1 (v4 fingerprints, WKD names) and SHA-256 (v6
// fingerprints), from swift-crypto. This is the module's only import of Crypto: the fuzzer
// (fuzz/OpenPGPFuzzer.swift) is built with plain swiftc, which cannot import it, so fuzz/run
// compiles every other file of this module with the fuzzer, which defines a stand-in `KeyHash`
// of the same shape returning deterministic bytes of the right lengths. Digests are only computed
// and compared, never parsed, so the stand-in reaches the same code.

import Crypto

enum KeyHash {
    static func sha1(_ bytes: [UInt8]) -> [UInt8] {
        Array(Insecure.SHA1.hash(data: bytes))
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }
}
