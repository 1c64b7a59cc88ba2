import MailCore
import NIOCore
import Testing
@testable import SMTP

// Transcripts for the roles of `SubmissionSession`: the public MX (exchange, with STARTTLS), the
// trusted peer's login on the submission port (relay after `.peer`) and the relay port itself.

/// The exchange's configuration: the Internet domain, STARTTLS as asked.
private func exchange(startTLS: Bool) -> SubmissionSession.Configuration {
    .init(domain: "i2pmail.org", role: .exchange, offersSTARTTLS: startTLS, maxMessageSize: 10_000)
}

/// The exchange's EHLO reply: no AUTH ever; STARTTLS only when offered and not yet active.
private func exchangeEHLO(startTLS: Bool) -> String {
    """
    S: 250-i2pmail.org
    S: 250-PIPELINING
    S: 250-SIZE 10000
    S: 250-8BITMIME
    S: 250-ENHANCEDSTATUSCODES
    S: 250-SMTPUTF8
    S: 250-CHUNKING\(startTLS ? "\nS: 250-STARTTLS" : "")
    S: 250 HELP
    """
}

/// base64 of "\0gateway\0peer-secret": the fake backend answers `.peer`.
private let peerPlain = "AGdhdGV3YXkAcGVlci1zZWNyZXQ="
/// base64 of "\0gateway\0not-the-secret".
private let wrongPeerPlain = "AGdhdGV3YXkAbm90LXRoZS1zZWNyZXQ="

/// Sends each string as one write (CRLF added to every line) and returns the replies per write.
private func exchangeWrites(_ driver: inout TranscriptDriver, _ writes: [[String]]) async -> [[String]] {
    var replies: [[String]] = []
    for lines in writes {
        replies.append(await driver.send(lines.map { $0 + "\r\n" }.joined()))
    }
    return replies
}

@Suite struct ExchangeRoleTranscriptTests {
    @Test func ehloWithoutCertificateOffersNeitherSTARTTLSNorAUTH() async {
        await runTranscript("""
            S: 220 i2pmail.org ESMTP Postern
            C: EHLO mx.example.com
            \(exchangeEHLO(startTLS: false))
            C: STARTTLS
            S: 502 5.5.1 STARTTLS not offered: no certificate is configured
            """, configuration: exchange(startTLS: false))
    }

    @Test func ehloWithCertificateOffersSTARTTLSButNeverAUTH() async {
        await runTranscript("""
            S: 220 i2pmail.org ESMTP Postern
            C: EHLO mx.example.com
            \(exchangeEHLO(startTLS: true))
            C: AUTH PLAIN \(alicePlain)
            S: 502 5.5.1 AUTH not available here: this is a mail exchanger
            C: AUTH LOGIN
            S: 502 5.5.1 AUTH not available here: this is a mail exchanger
            C: NOOP
            S: 250 2.0.0 OK
            """, configuration: exchange(startTLS: true))
    }

    @Test func authIsRefusedEvenWithGoodCredentialsAndNothingIsAuthenticated() async {
        let backend = FakeSubmissionBackend()
        var driver = TranscriptDriver(configuration: exchange(startTLS: false), backend: backend)
        let replies = await exchangeWrites(&driver, [
            ["EHLO mx.example.com"],
            ["AUTH PLAIN \(peerPlain)"],
            // No login happened: MAIL still goes through the exchange's sender check.
            ["MAIL FROM:<someone@spf-fail.test>"],
        ])
        #expect(replies[1] == ["502 5.5.1 AUTH not available here: this is a mail exchanger"])
        #expect(replies[2] == ["550 5.7.23 SPF check failed"])
    }

    @Test func mailBeforeEHLOIsABadSequence() async {
        await runTranscript("""
            S: 220 *
            C: MAIL FROM:<someone@example.com>
            S: 503 5.5.1 Send EHLO first
            C: RCPT TO:<bob@mail.i2p>
            S: 503 5.5.1 Need MAIL before RCPT
            C: HELO mx.example.com
            S: 250 i2pmail.org
            C: MAIL FROM:<someone@example.com>
            S: 250 2.1.0 Sender OK
            """, configuration: exchange(startTLS: false))
    }

    /// Refused recipients count as errors on an exchange: whoever tries name after name to learn
    /// the account list is cut off after `maxErrors` (the gateway uses 10). Submission is not.
    @Test func refusedRecipientsEndAHarvestingSession() async {
        var configuration = exchange(startTLS: false)
        configuration.maxErrors = 3
        await runTranscript("""
            S: 220 *
            C: EHLO mx.example.com
            \(exchangeEHLO(startTLS: false))
            C: MAIL FROM:<x@example.com>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<guess1@mail.i2p>
            S: 550 5.1.1 No such user here
            C: RCPT TO:<bob@mail.i2p>
            S: 250 2.1.5 Recipient OK
            C: RCPT TO:<guess2@mail.i2p>
            S: 550 5.1.1 No such user here
            C: RCPT TO:<guess3@mail.i2p>
            S: 550 5.1.1 No such user here
            S: 421 4.7.0 Too many errors, closing connection
            closed
            """, configuration: configuration)
        // A temporary refusal (mailbox full) is no guess and does not count.
        configuration.maxErrors = 2
        await runTranscript("""
            S: 220 *
            C: EHLO mx.example.com
            \(exchangeEHLO(startTLS: false))
            C: MAIL FROM:<x@example.com>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<full@mail.i2p>
            S: 452 4.2.2 Mailbox full
            C: RCPT TO:<full@mail.i2p>
            S: 452 4.2.2 Mailbox full
            C: RCPT TO:<bob@mail.i2p>
            S: 250 2.1.5 Recipient OK
            """, configuration: configuration)
    }

    @Test func nullSenderIsAcceptedAndDeliveredWithoutSender() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            C: EHLO mx.example.com
            \(exchangeEHLO(startTLS: false))
            C: MAIL FROM:<>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<bob@mail.i2p>
            S: 250 2.1.5 Recipient OK
            C: DATA
            S: 354 End data with <CR><LF>.<CR><LF>
            C: From: Mail Delivery System <MAILER-DAEMON@example.com>
            C: Subject: bounce
            C:
            C: report
            C: .
            S: 250 2.0.0 Message accepted for delivery
            """, configuration: exchange(startTLS: false), backend: backend)
        let envelopes = backend.envelopes
        #expect(envelopes.count == 1)
        #expect(envelopes.first?.sender == nil)
        #expect(envelopes.first?.recipients.map(\.description) == ["bob@mail.i2p"])
        #expect(envelopes.first?.overTLS == false)
        #expect(backend.messages == ["From: Mail Delivery System <MAILER-DAEMON@example.com>\r\nSubject: bounce\r\n\r\nreport\r\n"])
    }

    @Test func foreignSenderAndForeignFromHeaderAreTakenFromTheInternet() async {
        // The exchange takes any sender and any From: no login's rules (SMTP-3 is submission only).
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            C: EHLO mx.example.com
            \(exchangeEHLO(startTLS: false))
            C: MAIL FROM:<someone@example.com>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<alice@mail.i2p>
            S: 250 2.1.5 Recipient OK
            C: DATA
            S: 354 *
            C: From: Someone <someone@example.com>
            C:
            C: hello
            C: .
            S: 250 2.0.0 Message accepted for delivery
            """, configuration: exchange(startTLS: false), backend: backend)
        #expect(backend.envelopes.map { $0.sender?.description } == ["someone@example.com"])
        #expect(backend.envelopes.first?.overTLS == false)
    }

    @Test func senderFailingSPFIsRefusedAndNoTransactionStarts() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            C: EHLO mx.example.com
            \(exchangeEHLO(startTLS: false))
            C: MAIL FROM:<forger@spf-fail.test>
            S: 550 5.7.23 SPF check failed
            C: RCPT TO:<bob@mail.i2p>
            S: 503 5.5.1 Need MAIL before RCPT
            C: DATA
            S: 503 5.5.1 Need MAIL before DATA
            C: MAIL FROM:<honest@example.com>
            S: 250 2.1.0 Sender OK
            """, configuration: exchange(startTLS: false), backend: backend)
        #expect(backend.envelopes.isEmpty)
    }
}

@Suite struct STARTTLSTranscriptTests {
    @Test func startTLSDiscardsPipelinedCommandsAndStartsOver() async {
        let backend = FakeSubmissionBackend()
        var driver = TranscriptDriver(configuration: exchange(startTLS: true), backend: backend)
        let replies = await exchangeWrites(&driver, [
            ["EHLO mx.example.com"],
            // RFC 3207 4 / CVE-2011-0411: what follows STARTTLS in the same write came before the
            // handshake and must never be answered or acted upon.
            ["STARTTLS", "MAIL FROM:<injected@example.com>", "RCPT TO:<bob@mail.i2p>", "DATA"],
        ])
        #expect(replies[1] == ["220 2.0.0 Ready to start TLS"])
        #expect(driver.tlsStarts == 1)
        #expect(!driver.closed)

        // The session starts over: no EHLO yet, and no transaction survived.
        let afterHandshake = await exchangeWrites(&driver, [
            ["MAIL FROM:<someone@example.com>"],
            ["RCPT TO:<bob@mail.i2p>"],
            ["EHLO mx.example.com"],
            ["STARTTLS"],
        ])
        #expect(afterHandshake[0] == ["503 5.5.1 Send EHLO first"])
        #expect(afterHandshake[1] == ["503 5.5.1 Need MAIL before RCPT"])
        #expect(afterHandshake[2] == exchangeEHLO(startTLS: false).split(separator: "\n").map { String($0.dropFirst(3)) })
        #expect(!afterHandshake[2].contains("250-STARTTLS"))
        #expect(afterHandshake[3] == ["503 5.5.1 TLS already active"])
        #expect(driver.tlsStarts == 1)
        #expect(backend.envelopes.isEmpty)
    }

    @Test func messageAfterSTARTTLSIsMarkedOverTLS() async {
        let backend = FakeSubmissionBackend()
        var driver = TranscriptDriver(configuration: exchange(startTLS: true), backend: backend)
        let replies = await exchangeWrites(&driver, [
            ["EHLO mx.example.com"],
            ["STARTTLS"],
            ["EHLO mx.example.com"],
            ["MAIL FROM:<>", "RCPT TO:<alice@mail.i2p>", "DATA"],
            ["Subject: over tls", "", "secret", "."],
        ])
        #expect(replies[1] == ["220 2.0.0 Ready to start TLS"])
        #expect(replies[3] == ["250 2.1.0 Sender OK", "250 2.1.5 Recipient OK", "354 End data with <CR><LF>.<CR><LF>"])
        #expect(replies[4] == ["250 2.0.0 Message accepted for delivery"])
        #expect(driver.tlsStarts == 1)
        #expect(backend.envelopes.count == 1)
        #expect(backend.envelopes.first?.overTLS == true)
        #expect(backend.envelopes.first?.sender == nil)
        #expect(backend.messages == ["Subject: over tls\r\n\r\nsecret\r\n"])
    }

    @Test func clearTextMessageThenTLSMessageOnOneConnection() async {
        let backend = FakeSubmissionBackend()
        var driver = TranscriptDriver(configuration: exchange(startTLS: true), backend: backend)
        _ = await exchangeWrites(&driver, [
            ["EHLO mx.example.com"],
            ["MAIL FROM:<a@example.com>", "RCPT TO:<bob@mail.i2p>", "DATA"],
            ["Subject: one", "", "x", "."],
            ["STARTTLS"],
            ["EHLO mx.example.com"],
            ["MAIL FROM:<a@example.com>", "RCPT TO:<bob@mail.i2p>", "DATA"],
            ["Subject: two", "", "y", "."],
        ])
        #expect(backend.envelopes.map(\.overTLS) == [false, true])
        #expect(driver.tlsStarts == 1)
    }

    @Test func startTLSBeforeEHLOIsRefused() async {
        var driver = TranscriptDriver(configuration: exchange(startTLS: true))
        let replies = await exchangeWrites(&driver, [["STARTTLS"]])
        #expect(replies[0] == ["503 5.5.1 Send EHLO first"])
        #expect(driver.tlsStarts == 0)
    }

    @Test func startTLSIsNotAvailableOnSubmissionEvenWhenAsked() async {
        // The configuration only honours offersSTARTTLS for the exchange role.
        let configuration = SubmissionSession.Configuration(role: .submission, offersSTARTTLS: true, maxMessageSize: 10_000)
        #expect(configuration.offersSTARTTLS == false)
        var driver = TranscriptDriver(configuration: configuration)
        let replies = await exchangeWrites(&driver, [["EHLO client.example"], ["STARTTLS"], ["NOOP"]])
        #expect(!replies[0].contains { $0.contains("STARTTLS") })
        #expect(replies[1] == ["502 5.5.1 STARTTLS not offered: I2P already encrypts this connection"])
        #expect(replies[2] == ["250 2.0.0 OK"])
        #expect(driver.tlsStarts == 0)
    }
}

@Suite struct PeerLoginTranscriptTests {
    @Test func peerLoginMayUseAnySenderAndTheNullSender() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            C: EHLO core.mail.i2p
            \(ehloReply)
            C: AUTH PLAIN \(peerPlain)
            S: 235 2.7.0 Authentication successful
            C: MAIL FROM:<someone@example.com>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<bob@mail.i2p>
            S: 250 2.1.5 Recipient OK
            C: DATA
            S: 354 *
            C: From: Someone Else <someone@example.com>
            C: Subject: relayed
            C:
            C: hi bob
            C: .
            S: 250 2.0.0 Message accepted for delivery
            C: MAIL FROM:<>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<alice@mail.i2p>
            S: 250 2.1.5 Recipient OK
            C: DATA
            S: 354 *
            C: From: MAILER-DAEMON@i2pmail.org
            C:
            C: bounce
            C: .
            S: 250 2.0.0 Message accepted for delivery
            C: AUTH PLAIN \(alicePlain)
            S: 503 5.5.1 Already authenticated
            """, backend: backend)
        let envelopes = backend.envelopes
        #expect(envelopes.count == 2)
        // The sender is kept as given, not replaced by a login's address.
        #expect(envelopes.first?.sender?.description == "someone@example.com")
        #expect(envelopes.last?.sender == nil)
        #expect(backend.messages.first == "From: Someone Else <someone@example.com>\r\nSubject: relayed\r\n\r\nhi bob\r\n")
    }

    @Test func peerLoginByAUTHLOGINAlsoRelays() async {
        // "gateway" / "peer-secret" in base64.
        await runTranscript("""
            S: 220 *
            C: EHLO core.mail.i2p
            \(ehloReply)
            C: AUTH LOGIN Z2F0ZXdheQ==
            S: 334 UGFzc3dvcmQ6
            C: cGVlci1zZWNyZXQ=
            S: 235 2.7.0 Authentication successful
            C: MAIL FROM:<anyone@example.org>
            S: 250 2.1.0 Sender OK
            """)
    }

    @Test func ordinaryLoginStillOwnsItsSender() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<someone@example.com>
            S: 553 5.7.1 Sender address must be your own address <alice@mail.i2p>
            C: MAIL FROM:<>
            S: 553 5.7.1 Null sender not allowed on submission
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<bob@mail.i2p>
            S: 250 2.1.5 Recipient OK
            C: DATA
            S: 354 *
            C: From: Someone Else <someone@example.com>
            C:
            C: forged
            C: .
            S: 553 5.7.1 From header address <someone@example.com> is not your address <alice@mail.i2p>; a display name is allowed, another address is not
            """, backend: backend)
        #expect(backend.envelopes.isEmpty)
    }

    @Test func wrongPeerPasswordIsAFailedLogin() async {
        await runTranscript("""
            S: 220 *
            C: EHLO core.mail.i2p
            \(ehloReply)
            C: AUTH PLAIN \(wrongPeerPlain)
            S: 535 5.7.8 Authentication credentials invalid
            C: MAIL FROM:<someone@example.com>
            S: 530 5.7.0 Authentication required
            C: MAIL FROM:<>
            S: 530 5.7.0 Authentication required
            """)
    }
}

@Suite struct RelayRoleTranscriptTests {
    private let relay = SubmissionSession.Configuration(role: .relay, maxMessageSize: 10_000)

    @Test func nothingBeforeAuthAndAUTHIsOffered() async {
        await runTranscript("""
            S: 220 mail.i2p ESMTP Postern
            C: EHLO gateway.example
            \(ehloReply)
            C: MAIL FROM:<>
            S: 530 5.7.0 Authentication required
            C: RCPT TO:<bob@mail.i2p>
            S: 530 5.7.0 Authentication required
            C: DATA
            S: 530 5.7.0 Authentication required
            C: STARTTLS
            S: 502 5.5.1 STARTTLS not offered: I2P already encrypts this connection
            C: NOOP
            S: 250 2.0.0 OK
            """, configuration: relay)
    }

    @Test func bdatBeforeAuthIsRefusedAndItsBytesSwallowed() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            C: EHLO gateway.example
            \(ehloReply)
            R: BDAT 6 LAST\\r\\nQUIT\\r\\n
            S: 530 5.7.0 Authentication required
            C: NOOP
            S: 250 2.0.0 OK
            """, configuration: relay, backend: backend)
        #expect(backend.envelopes.isEmpty)
    }

    @Test func peerLoginThenNullSenderAndForeignFrom() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            C: EHLO gateway.example
            \(ehloReply)
            C: AUTH PLAIN \(peerPlain)
            S: 235 2.7.0 Authentication successful
            C: MAIL FROM:<>
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<alice@mail.i2p>
            S: 250 2.1.5 Recipient OK
            C: DATA
            S: 354 *
            C: From: someone@example.com
            C:
            C: body
            C: .
            S: 250 2.0.0 Message accepted for delivery
            """, configuration: relay, backend: backend)
        #expect(backend.envelopes.count == 1)
        #expect(backend.envelopes.first?.sender == nil)
        #expect(backend.envelopes.first?.overTLS == false)
    }
}
