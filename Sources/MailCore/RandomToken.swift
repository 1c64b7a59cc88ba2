/// Random lower-case letters and digits: Message-ID parts, MIME boundaries, queue ids, trace ids.
/// Nothing of the time, the host or a counter — just randomness from the caller's generator.
public enum RandomToken {
    private static let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789".utf8)

    public static func make<R: RandomNumberGenerator>(length: Int, using random: inout R) -> String {
        String(decoding: (0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }, as: UTF8.self)
    }

    public static func make(length: Int) -> String {
        var random = SystemRandomNumberGenerator()
        return make(length: length, using: &random)
    }
}
