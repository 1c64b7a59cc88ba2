// libFuzzer entry point for the SAM reply parser (issue 8): any bytes, as one reply line.
// Built and run by fuzz/run (swiftc -sanitize=fuzzer,address).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSAMReply(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    if let reply = try? SAMReply.parse(bytes) {
        // Whatever parses must also be sendable back as a command line without trapping.
        _ = try? SAMCommand(reply.topic, reply.verb, fields: reply.fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }).line()
        _ = reply.failure
    }
    return 0
}
