import NIOCore
import Testing
@testable import SMTP

@Suite struct SubmissionTranscriptTests {
    @Test func greetingNamesOnlyTheMailDomain() async {
        await runTranscript("""
            S: 220 mail.i2p ESMTP Postern
            C: QUIT
            S: 221 2.0.0 Bye
            closed
            """, greeting: true)
    }

    @Test func fullSubmissionWithDotUnstuffing() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p> SIZE=100 BODY=8BITMIME
            S: 250 2.1.0 Sender OK
            C: RCPT TO:<bob@mail.i2p>
            S: 250 2.1.5 Recipient OK
            C: DATA
            S: 354 End data with <CR><LF>.<CR><LF>
            C: From: Alice <alice@mail.i2p>
            C: Subject: test
            C:
            C: ..leading dot
            C: .
            S: 250 2.0.0 Message accepted for delivery
            C: QUIT
            S: 221 2.0.0 Bye
            closed
            """, backend: backend)
        #expect(backend.messages == ["From: Alice <alice@mail.i2p>\r\nSubject: test\r\n\r\n.leading dot\r\n"])
        #expect(backend.envelopes.first?.bodyType == .eightBitMIME)
    }

    @Test func pipelinedTransactionGetsEveryReplyInOrder() async {
        // RFC 2920: the whole group in one write, replies in order.
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            C: RCPT TO:<bob@mail.i2p>
            C: RCPT TO:<nobody@mail.i2p>
            C: RCPT TO:<alice@mail.i2p>
            C: DATA
            S: 250 2.1.0 Sender OK
            S: 250 2.1.5 Recipient OK
            S: 550 5.1.1 No such user here
            S: 250 2.1.5 Recipient OK
            S: 354 End data with <CR><LF>.<CR><LF>
            C: Subject: x
            C:
            C: body
            C: .
            C: MAIL FROM:<alice@mail.i2p>
            C: RCPT TO:<bob@mail.i2p>
            C: RSET
            C: NOOP
            S: 250 2.0.0 Message accepted for delivery
            S: 250 2.1.0 Sender OK
            S: 250 2.1.5 Recipient OK
            S: 250 2.0.0 OK
            S: 250 2.0.0 OK
            """, backend: backend)
        #expect(backend.envelopes.map { $0.recipients.map(\.description) } == [["bob@mail.i2p", "alice@mail.i2p"]])
    }

    @Test func nothingButTheBasicsBeforeAuthentication() async {
        await runTranscript("""
            S: 220 *
            C: EHLO client.example
            \(ehloReply)
            C: MAIL FROM:<alice@mail.i2p>
            S: 530 5.7.0 Authentication required
            C: RCPT TO:<bob@mail.i2p>
            S: 530 5.7.0 Authentication required
            C: DATA
            S: 530 5.7.0 Authentication required
            C: VRFY bob
            S: 530 5.7.0 Authentication required
            C: NOOP
            S: 250 2.0.0 OK
            C: RSET
            S: 250 2.0.0 OK
            """)
    }

    @Test func bdatBeforeAuthenticationSwallowsItsBytes() async {
        // The chunk's bytes must never be read as commands, even when BDAT is refused.
        await runTranscript("""
            S: 220 *
            C: EHLO client.example
            \(ehloReply)
            R: BDAT 6\\r\\nQUIT\\r\\n
            S: 530 5.7.0 Authentication required
            C: NOOP
            S: 250 2.0.0 OK
            """)
    }

    @Test func authPlainWithContinuationAndLogin() async {
        await runTranscript("""
            S: 220 *
            C: EHLO c
            \(ehloReply)
            C: AUTH PLAIN
            S: 334 
            C: \(alicePlain)
            S: 235 2.7.0 Authentication successful
            """)
        await runTranscript("""
            S: 220 *
            C: EHLO c
            \(ehloReply)
            C: AUTH LOGIN
            S: 334 VXNlcm5hbWU6
            C: Ym9i
            S: 334 UGFzc3dvcmQ6
            C: Y29ycmVjdC1ob3JzZS0y
            S: 235 2.7.0 Authentication successful
            C: AUTH PLAIN \(alicePlain)
            S: 503 5.5.1 Already authenticated
            """)
        await runTranscript("""
            S: 220 *
            C: EHLO c
            \(ehloReply)
            C: AUTH LOGIN Ym9i
            S: 334 UGFzc3dvcmQ6
            C: Y29ycmVjdC1ob3JzZS0y
            S: 235 2.7.0 Authentication successful
            """)
    }

    @Test func authErrors() async {
        await runTranscript("""
            S: 220 *
            C: AUTH PLAIN \(alicePlain)
            S: 503 5.5.1 Send EHLO first
            C: EHLO c
            \(ehloReply)
            C: AUTH CRAM-MD5
            S: 504 5.5.4 Unrecognized authentication mechanism: use PLAIN or LOGIN
            C: AUTH PLAIN
            S: 334 
            C: *
            S: 501 5.0.0 Authentication canceled
            C: AUTH PLAIN =
            S: 501 5.5.2 Cannot decode SASL response (base64 expected)
            C: AUTH PLAIN !!!notbase64
            S: 501 5.5.2 Cannot decode SASL response (base64 expected)
            C: AUTH PLAIN \(alicePlain)
            S: 235 2.7.0 Authentication successful
            """)
    }

    @Test func temporaryAuthFailureIs454() async {
        // "\0tempfail\0whatever-long"
        await runTranscript("""
            S: 220 *
            C: EHLO c
            \(ehloReply)
            C: AUTH PLAIN AHRlbXBmYWlsAHdoYXRldmVyLWxvbmc=
            S: 454 4.7.0 Temporary authentication failure, try again later
            """)
    }

    @Test func threeFailedAuthsCloseTheConnection() async {
        // "\0alice\0wrong-password"
        let wrong = "AGFsaWNlAHdyb25nLXBhc3N3b3Jk"
        await runTranscript("""
            S: 220 *
            C: EHLO c
            \(ehloReply)
            C: AUTH PLAIN \(wrong)
            S: 535 5.7.8 Authentication credentials invalid
            C: AUTH PLAIN \(wrong)
            S: 535 5.7.8 Authentication credentials invalid
            C: AUTH PLAIN \(wrong)
            S: 421 4.7.0 Too many failed authentication attempts, closing connection
            closed
            """)
    }

    @Test func authorizationIdentityOfSomeoneElseIsRefused() async {
        // "bob\0alice\0correct-horse-1": alice asking to act as bob.
        await runTranscript("""
            S: 220 *
            C: EHLO c
            \(ehloReply)
            C: AUTH PLAIN Ym9iAGFsaWNlAGNvcnJlY3QtaG9yc2UtMQ==
            S: 535 5.7.8 Authentication credentials invalid
            """)
    }

    @Test func senderMustBeTheLogin() async {
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<bob@mail.i2p>
            S: 553 5.7.1 Sender address must be your own address <alice@mail.i2p>
            C: MAIL FROM:<>
            S: 553 5.7.1 Null sender not allowed on submission
            C: MAIL FROM:<ALICE@MAIL.I2P>
            S: 250 2.1.0 Sender OK
            C: MAIL FROM:<alice@mail.i2p>
            S: 503 5.5.1 Nested MAIL command
            """)
    }

    @Test func headerFromMustBeTheLogin() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            C: DATA
            S: 354 *
            C: From: "Alice" <mallory@mail.i2p>
            C:
            C: spoof
            C: .
            S: 553 5.7.1 From header address <mallory@mail.i2p> is not your address <alice@mail.i2p>; a display name is allowed, another address is not
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            C: DATA
            S: 354 *
            C: From: a@mail.i2p, alice@mail.i2p
            C:
            C: two
            C: .
            S: 553 5.7.1 From header must hold exactly your own address <alice@mail.i2p>
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            C: DATA
            S: 354 *
            C: From: "Alice (the real one)" <Alice@Mail.I2P> (comment)
            C:
            C: fine
            C: .
            S: 250 2.0.0 Message accepted for delivery
            """, backend: backend)
        #expect(backend.messages.count == 1)
    }

    @Test func recipientsRules() async {
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: RCPT TO:<bob@mail.i2p>
            S: 503 5.5.1 Need MAIL before RCPT
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<victim@example.com>
            S: 550 5.7.1 Relaying denied
            C: RCPT TO:<full@mail.i2p>
            S: 452 4.2.2 Mailbox full
            C: RCPT TO:<bob@mail.i2p> NOTIFY=NEVER
            S: 555 5.5.4 Parameter NOTIFY not recognized
            C: RCPT TO:bob@mail.i2p
            S: 501 5.5.4 Syntax error: address must be enclosed in <>
            C: RCPT TO:<@relay.example:bob@mail.i2p>
            S: 250 2.1.5 Recipient OK
            C: DATA
            S: 354 *
            """)
    }

    @Test func recipientLimitIs452() async {
        var transcript = """
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *

            """
        transcript += "C: RCPT TO:<bob@mail.i2p>\nS: 250 2.1.5 Recipient OK\n"
        transcript += "C: RCPT TO:<alice@mail.i2p>\nS: 452 4.5.3 Too many recipients: at most 1 per message\n"
        await runTranscript(transcript, configuration: .init(maxMessageSize: 10_000, maxRecipients: 1))
    }

    @Test func dataWithoutRecipients() async {
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: DATA
            S: 503 5.5.1 Need MAIL before DATA
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<nobody@mail.i2p>
            S: 550 *
            C: DATA
            S: 554 5.5.1 No valid recipients
            """)
    }

    @Test func sizeLimitAtMailAndWhileStreaming() async {
        let backend = FakeSubmissionBackend()
        let big = String(repeating: "x", count: 900)
        var transcript = """
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p> SIZE=20000
            S: 552 5.3.4 Message size exceeds fixed maximum message size of 10000 octets
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            C: DATA
            S: 354 *

            """
        for _ in 0..<20 { transcript += "C: \(big)\n" }
        transcript += """
            C: .
            S: 552 5.3.4 Message size exceeds fixed maximum message size of 10000 octets
            C: NOOP
            S: 250 2.0.0 OK
            """
        await runTranscript(transcript, backend: backend)
        #expect(backend.messages.isEmpty)
    }

    @Test func overlongDataLineRefusesTheMessageButKeepsTheSession() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            C: DATA
            S: 354 *
            C: \(String(repeating: "y", count: 999))
            C: .
            S: 554 5.6.0 Message refused: a line is longer than 1000 octets (RFC 5321 4.5.3.1.6)
            C: NOOP
            S: 250 2.0.0 OK
            """, backend: backend)
        #expect(backend.messages.isEmpty)
    }

    @Test func smuggledEndOfDataIsRefusedAndTheSessionEnds() async {
        // SMTP smuggling: "\n.\n" must not end DATA and must not start a second transaction.
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            C: DATA
            S: 354 *
            R: Subject: a\\r\\n\\r\\nbody\\n.\\nMAIL FROM:<alice@mail.i2p>\\r\\nRCPT TO:<bob@mail.i2p>\\r\\nDATA\\r\\n\\r\\nsmuggled\\r\\n.\\r\\n
            S: 521 5.5.2 Bare CR or LF in message data: lines must end in CRLF (RFC 5321 2.3.8); closing connection
            closed
            """, backend: backend)
        #expect(backend.messages.isEmpty)
    }

    @Test func bareCRInDataIsRefused() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            C: DATA
            S: 354 *
            R: body\\r.\\r\\n.\\r\\n
            S: 521 *
            closed
            """, backend: backend)
        #expect(backend.messages.isEmpty)
    }

    @Test func nulInDataIsRefused() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            C: DATA
            S: 354 *
            R: a\\0b\\r\\n.\\r\\n
            S: 554 5.6.0 Message refused: it contains NUL characters
            """, backend: backend)
        #expect(backend.messages.isEmpty)
    }

    @Test func badCommandLines() async {
        await runTranscript("""
            S: 220 *
            R: NOOP\\nQUIT\\r\\n
            S: 500 5.5.2 Bare CR or LF in command: lines must end in CRLF (RFC 5321 2.3.8)
            C: \(String(repeating: "A", count: 600))
            S: 500 5.5.2 Command line too long: at most 512 octets (RFC 5321 4.5.3.1.4)
            R: NO\\0OP\\r\\n
            S: 500 5.5.2 NUL character in command
            C: FROB
            S: 500 5.5.1 Command unrecognized
            C: EHLO
            S: 501 5.5.4 Syntax error: EHLO requires a domain or address literal
            C: STARTTLS
            S: 502 5.5.1 STARTTLS not offered: I2P already encrypts this connection
            C: noop
            S: 250 2.0.0 OK
            """)
    }

    @Test func nonASCIIAddressesNeedSMTPUTF8() async {
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<jörg@mail.i2p>
            S: 553 5.6.7 Non-ASCII address requires the SMTPUTF8 parameter (RFC 6531)
            C: RSET
            S: 250 *
            C: MAIL FROM:<alice@mail.i2p> SMTPUTF8
            S: 250 *
            C: RCPT TO:<jörg@mail.i2p>
            S: 550 5.1.1 No such user here
            """)
    }

    @Test func longAddressesAreSyntaxErrors() async {
        let local = String(repeating: "a", count: 65)
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<\(local)@mail.i2p>
            S: 501 5.5.4 Syntax error: invalid address
            C: MAIL FROM:<alice@mail.i2p>
            S: 503 5.5.1 Nested MAIL command
            C: RSET
            S: 250 *
            C: MAIL FROM:<alice@mail.i2p> FOO=BAR
            S: 555 5.5.4 Parameter FOO not recognized
            C: MAIL FROM:<alice@mail.i2p> SIZE=abc
            S: 501 5.5.4 Syntax error: SIZE=<number>
            """)
    }

    @Test func chunkingDeliversExactBytes() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            R: BDAT 14\\r\\nSubject: x\\r\\n\\r\\nBDAT 9 LAST\\r\\nbody\\r\\n.\\r\\n
            S: 250 2.0.0 14 octets received
            S: 250 2.0.0 Message accepted for delivery
            C: NOOP
            S: 250 2.0.0 OK
            """, backend: backend)
        // A BDAT body is not dot-stuffed: ".\r\n" is content.
        #expect(backend.messages == ["Subject: x\r\n\r\nbody\r\n.\r\n"])
    }

    @Test func chunkWithBareLFIsRefusedAtLast() async {
        let backend = FakeSubmissionBackend()
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            R: BDAT 5 LAST\\r\\na\\nb\\r\\n
            S: 554 5.6.0 Message refused: bare LF: lines must end in CRLF (RFC 5321 2.3.8)
            """, backend: backend)
        #expect(backend.messages.isEmpty)
    }

    @Test func dataAfterBdatIsASequenceError() async {
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: MAIL FROM:<alice@mail.i2p>
            S: 250 *
            C: RCPT TO:<bob@mail.i2p>
            S: 250 *
            R: BDAT 3\\r\\nabc
            S: 250 2.0.0 3 octets received
            C: DATA
            S: 503 5.5.1 DATA not allowed after BDAT
            """)
    }

    @Test func vrfyRevealsNothing() async {
        await runTranscript("""
            S: 220 *
            \(loginAsAlice)
            C: VRFY bob
            S: 252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery
            C: VRFY nobody
            S: 252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery
            C: EXPN list
            S: 502 5.5.1 EXPN not available
            C: HELP
            S: 214 *
            """)
    }

    @Test func tooManyErrorsCloseTheSession() async {
        var transcript = "S: 220 *\n"
        for _ in 0..<4 { transcript += "C: BOGUS\nS: 500 5.5.1 Command unrecognized\n" }
        transcript += "C: BOGUS\nS: 500 5.5.1 Command unrecognized\nS: 421 4.7.0 Too many errors, closing connection\nclosed\n"
        await runTranscript(transcript, configuration: .init(maxMessageSize: 10_000, maxErrors: 5))
    }

    @Test func randomInputNeverTrapsTheSession() async {
        // A cheap in-process fuzz: random command-ish bytes; the session must answer or close.
        var generator = SystemRandomNumberGenerator()
        let pieces = ["EHLO x\r\n", "AUTH PLAIN \(alicePlain)\r\n", "MAIL FROM:<alice@mail.i2p>\r\n", "RCPT TO:<bob@mail.i2p>\r\n",
                      "DATA\r\n", "BDAT 3\r\n", "BDAT 2 LAST\r\n", ".\r\n", "\r\n", "\n", "\r", "\0", "x", "AUTH LOGIN\r\n", "*\r\n",
                      "RSET\r\n", String(repeating: "z", count: 700), "QUIT\r\n"]
        for _ in 0..<300 {
            var driver = TranscriptDriver()
            for _ in 0..<30 {
                let input = pieces.randomElement(using: &generator)!
                _ = await driver.send(input)
                if driver.closed { break }
            }
        }
    }
}
