// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Postern",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "postern", targets: ["postern"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", from: "1.6.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // Pure values: addresses, header fields, dot-stuffing. No I/O.
        .target(name: "MailCore"),
        // Pure privacy policies: header and MIME sanitising for submission, Internet-bound and
        // Internet-inbound mail (PRIV-1..5).
        .target(name: "Privacy", dependencies: ["MailCore"]),
        // Accounts, mailboxes, durable group commit; SQLite (GRDB) and message files.
        .target(name: "Store", dependencies: [
            "MailCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        // Shared wire layer: CRLF-only bounded line framing over ByteBuffer.
        .target(name: "Wire", dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")]),
        // SMTP submission: wire format, pure session state machine, NIO server.
        .target(name: "SMTP", dependencies: [
            "MailCore", "Wire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // POP3: wire format, pure session state machine, NIO server.
        .target(name: "POP3", dependencies: [
            "MailCore", "Wire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The outbound queue runner: delay schedule, relay to the next hop, retries, DSNs,
        // hashcash (QUEUE, DELAY, QUOTA).
        .target(name: "Delivery", dependencies: [
            "MailCore", "Privacy", "Store", "SMTP",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The Internet gateway (GW-1..3): the exchange (MX inbound with SPF, DKIM verification,
        // blocklists and the live recipient check against the core), the outbound intake from
        // the core, its small file queue and MX delivery with STARTTLS and DKIM signing; DNS.
        .target(name: "Gateway", dependencies: [
            "MailCore", "Privacy", "SMTP", "Wire", "Scan",
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        // SAM v3 client (I2P-1, I2P-2): strict reply parser, sessions with persistent keys,
        // STREAM CONNECT/ACCEPT/FORWARD, NAMING LOOKUP, .b32.i2p names; endpoints kept alive.
        .target(name: "I2P", dependencies: [
            "SMTP", "Wire",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The clamd client (SCAN-1): INSTREAM scans and PING over TCP or a Unix socket.
        .target(name: "Scan", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The web (WEB-1, WEB-2): account pages served by the core and the webmail on the user's
        // machine, both Hummingbird apps with mustache templates; sessions, CSRF, security headers.
        .target(name: "Web", dependencies: [
            "MailCore", "Privacy", "Store", "SMTP", "POP3", "Wire", "Delivery", "KeyDirectory",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Mustache", package: "swift-mustache"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "CryptoExtras", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The public key book's pure core (KEYS-1, KEYS-2): OpenPGP packets, the key kept for an
        // address, armour, the HKP index and WKD names.
        .target(name: "KeyDirectory", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // Composition root: configuration, wiring, lifecycle, CLI commands.
        .target(name: "PosternApp", dependencies: [
            "MailCore", "Privacy", "Store", "SMTP", "POP3", "Delivery", "Gateway", "I2P", "Wire", "Web", "Scan", "Notify", "KeyDirectory",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "TOMLKit", package: "TOMLKit"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "postern", dependencies: ["PosternApp", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // Allocation counts per message on the hot paths, checked against bench/alloc-limits.json
        // (run by bench/alloc-guard with the interposer preloaded).
        .executableTarget(name: "postern-alloc-guard", dependencies: [
            "SMTP", "POP3", "Privacy", "MailCore", "Wire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
        ], path: "bench/AllocGuard"),

        // What several test targets share (a seeded random generator).
        .target(name: "TestSupport", path: "Tests/Support"),
        .testTarget(name: "WireTests", dependencies: ["Wire", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "MailCoreTests", dependencies: ["MailCore"]),
        .testTarget(name: "PrivacyTests", dependencies: ["Privacy", "MailCore", "TestSupport"]),
        .testTarget(name: "StoreTests", dependencies: [
            "Store", "MailCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "SMTPTests", dependencies: [
            "SMTP", "Wire", "MailCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "POP3Tests", dependencies: [
            "POP3", "Wire", "TestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "DeliveryTests", dependencies: [
            "Delivery", "Store", "SMTP", "MailCore", "TestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "I2PTests", dependencies: [
            "I2P", "SMTP",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "ScanTests", dependencies: [
            "Scan",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "GatewayTests", dependencies: [
            "Gateway", "MailCore", "SMTP", "Privacy", "TestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "WebTests", dependencies: [
            "Web", "Store", "MailCore", "Privacy", "Delivery", "Wire",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "PosternAppTests", dependencies: [
            "PosternApp", "Store", "SMTP", "POP3", "MailCore", "Delivery",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // New-mail notices on IRC (IRC-1..3): IRC message codec, the client session and the
        // notification policy as values, the NIO bot over a StreamConnector.
        .target(name: "Notify", dependencies: [
            "Wire", "MailCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "NotifyTests", dependencies: [
            "Notify", "Wire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "KeyDirectoryTests", dependencies: ["KeyDirectory"]),
    ]
)
