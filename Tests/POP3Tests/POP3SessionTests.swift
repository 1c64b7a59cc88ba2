import NIOCore
import Testing
import Wire
@testable import POP3

/// Transcript tests of the pure session (RFC 1939, RFC 2449, RFC 5034) against the fake backend.
@Suite struct POP3SessionTests {
    // MARK: Greeting and capabilities

    @Test func greetingRevealsNothing() async {
        let driver = SessionDriver(backend: FakePOP3Backend())
        #expect(await driver.start() == "+OK Postern POP3 ready\r\n")
    }

    @Test func capabilitiesInBothStatesWithoutAPOP() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: CAPA
            S: +OK capability list follows
            S: USER
            S: SASL PLAIN
            S: RESP-CODES
            S: AUTH-RESP-CODE
            S: PIPELINING
            S: TOP
            S: UIDL
            S: .
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: +OK logged in, 3 messages (135 octets)
            C: capa
            S: +OK capability list follows
            S: USER
            S: SASL PLAIN
            S: RESP-CODES
            S: AUTH-RESP-CODE
            S: PIPELINING
            S: TOP
            S: UIDL
            S: .
            C: CAPA now
            S: -ERR CAPA takes no arguments
            """)
    }

    @Test func apopIsRefusedInEveryState() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: APOP alice@mail.i2p c4c9334bac560ecc979e58001b3e22fb
            S: -ERR APOP is not supported; use USER/PASS or AUTH PLAIN
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: +OK logged in, 3 messages (135 octets)
            C: APOP alice@mail.i2p c4c9334bac560ecc979e58001b3e22fb
            S: -ERR APOP is not supported; use USER/PASS or AUTH PLAIN
            """)
    }

    // MARK: A full session

    @Test func fullTransactionDeletesOnlyOnQuit() async {
        let backend = FakePOP3Backend()
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: +OK logged in, 3 messages (135 octets)
            C: STAT
            S: +OK 3 135
            C: LIST
            S: +OK 3 messages (135 octets)
            S: 1 59
            S: 2 40
            S: 3 36
            S: .
            C: LIST 2
            S: +OK 2 40
            C: UIDL
            S: +OK unique-id listing follows
            S: 1 uid-1
            S: 2 uid-2
            S: 3 uid-3
            S: .
            C: UIDL 3
            S: +OK 3 uid-3
            C: NOOP
            S: +OK
            C: DELE 2
            S: +OK message 2 deleted
            C: STAT
            S: +OK 2 95
            C: LIST
            S: +OK 2 messages (95 octets)
            S: 1 59
            S: 3 36
            S: .
            C: UIDL
            S: +OK unique-id listing follows
            S: 1 uid-1
            S: 3 uid-3
            S: .
            C: LIST 2
            S: -ERR message 2 already deleted
            C: UIDL 2
            S: -ERR message 2 already deleted
            C: RETR 2
            S: -ERR message 2 already deleted
            C: TOP 2 0
            S: -ERR message 2 already deleted
            C: DELE 2
            S: -ERR message 2 already deleted
            C: DELE 1
            S: +OK message 1 deleted
            C: QUIT
            S: +OK Postern POP3 signing off (2 messages deleted)
            == closed
            """, backend: backend)
        #expect(await backend.deleteCalls == [["uid-1", "uid-2"]])
        #expect(await backend.messages(in: "alice@mail.i2p") == ["uid-3"])
        #expect(await backend.locked.isEmpty)
        #expect(await backend.unlockCount == 1)
    }

    @Test func rsetUndeletes() async {
        let backend = FakePOP3Backend()
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: +OK logged in, 3 messages (135 octets)
            C: DELE 1
            S: +OK message 1 deleted
            C: DELE 3
            S: +OK message 3 deleted
            C: STAT
            S: +OK 1 40
            C: RSET
            S: +OK maildrop has 3 messages (135 octets)
            C: LIST 1
            S: +OK 1 59
            C: RSET x
            S: -ERR RSET takes no arguments
            C: QUIT
            S: +OK Postern POP3 signing off (0 messages deleted)
            == closed
            """, backend: backend)
        #expect(await backend.deleteCalls.isEmpty)
        #expect(await backend.messages(in: "alice@mail.i2p").count == 3)
        #expect(await backend.locked.isEmpty)
    }

    @Test func emptyMaildrop() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: USER bob@mail.i2p
            S: +OK send PASS
            C: PASS hunter2
            S: +OK logged in, 0 messages (0 octets)
            C: STAT
            S: +OK 0 0
            C: LIST
            S: +OK 0 messages (0 octets)
            S: .
            C: UIDL
            S: +OK unique-id listing follows
            S: .
            C: RETR 1
            S: -ERR no such message, only 0 messages in maildrop
            """)
    }

    @Test func quitInAuthorizationCloses() async {
        let backend = FakePOP3Backend()
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: quit
            S: +OK Postern POP3 signing off
            == closed
            """, backend: backend)
        #expect(await backend.lockCount == 0)
    }

    // MARK: RETR and TOP (POP-3)

    @Test func retrIsDotStuffedAndByteExact() async {
        let driver = SessionDriver(backend: FakePOP3Backend())
        _ = await driver.start()
        await driver.send("USER alice@mail.i2p")
        await driver.send("PASS secret pass")
        #expect(await driver.send("RETR 1") ==
            "+OK 59 octets\r\nFrom: bob@mail.i2p\r\nSubject: hi\r\n\r\nHello\r\n..hidden\r\n..\r\nbye\r\n.\r\n")
        #expect(await driver.send("RETR 3") ==
            "+OK 36 octets\r\nSubject: no final line break\r\n\r\nlast\r\n.\r\n")
        #expect(await driver.send("TOP 1 2") ==
            "+OK top of message follows\r\nFrom: bob@mail.i2p\r\nSubject: hi\r\n\r\nHello\r\n..hidden\r\n.\r\n")
        #expect(await driver.send("TOP 2 0") == "+OK top of message follows\r\nSubject: two\r\n\r\n.\r\n")
        #expect(await driver.send("TOP 3 10") ==
            "+OK top of message follows\r\nSubject: no final line break\r\n\r\nlast\r\n.\r\n")
        #expect(await driver.send("TOP 2 99999999999999999999999") ==
            "+OK top of message follows\r\nSubject: two\r\n\r\nline 1\r\nline 2\r\nline 3\r\n.\r\n")
    }

    @Test func topArgumentErrors() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: +OK logged in, 3 messages (135 octets)
            C: TOP
            S: -ERR TOP needs a message number and a line count
            C: TOP 1
            S: -ERR TOP needs a message number and a line count
            C: TOP 1 x
            S: -ERR line count must be a non-negative decimal number
            C: TOP 1 -1
            S: -ERR line count must be a non-negative decimal number
            C: TOP 9 1
            S: -ERR no such message, only 3 messages in maildrop
            C: TOP 1 1 1
            S: -ERR too many arguments for TOP
            """)
    }

    @Test func messageNumberErrors() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: +OK logged in, 3 messages (135 octets)
            C: RETR
            S: -ERR RETR needs a message number
            C: DELE
            S: -ERR DELE needs a message number
            C: RETR abc
            S: -ERR message number must be a positive decimal number
            C: RETR -1
            S: -ERR message number must be a positive decimal number
            C: RETR +1
            S: -ERR message number must be a positive decimal number
            C: RETR 1.0
            S: -ERR message number must be a positive decimal number
            C: RETR 0
            S: -ERR no such message, only 3 messages in maildrop
            C: RETR 4
            S: -ERR no such message, only 3 messages in maildrop
            C: LIST 4
            S: -ERR no such message, only 3 messages in maildrop
            C: UIDL 4
            S: -ERR no such message, only 3 messages in maildrop
            C: DELE 99999999999999999999999999
            S: -ERR no such message, only 3 messages in maildrop
            C: RETR 00000000000000000000000000000000000000001
            S: -ERR argument too long; at most 40 characters
            C: RETR 1 2
            S: -ERR too many arguments for RETR
            C: LIST 1 2
            S: -ERR too many arguments for LIST
            C: retr  1
            S: +OK 59 octets
            S: From: bob@mail.i2p
            S: Subject: hi
            S:
            S: Hello
            S: ..hidden
            S: ..
            S: bye
            S: .
            C: STAT 1
            S: -ERR STAT takes no arguments
            """)
    }

    // MARK: State errors and malformed lines

    @Test func commandsInTheWrongState() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: STAT
            S: -ERR STAT is only valid after login
            C: LIST
            S: -ERR LIST is only valid after login
            C: RETR 1
            S: -ERR RETR is only valid after login
            C: TOP 1 1
            S: -ERR TOP is only valid after login
            C: UIDL
            S: -ERR UIDL is only valid after login
            C: DELE 1
            S: -ERR DELE is only valid after login
            C: NOOP
            S: -ERR NOOP is only valid after login
            C: RSET
            S: -ERR RSET is only valid after login
            C: PASS secret pass
            S: -ERR send USER first
            C: UsEr alice@mail.i2p
            S: +OK send PASS
            C: pass secret pass
            S: +OK logged in, 3 messages (135 octets)
            C: USER bob@mail.i2p
            S: -ERR already logged in
            C: PASS hunter2
            S: -ERR already logged in
            C: AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz
            S: -ERR already logged in
            """)
    }

    @Test func unknownAndMalformedCommands() async {
        let driver = SessionDriver(backend: FakePOP3Backend())
        _ = await driver.start()
        #expect(await driver.send("XYZZY") == "-ERR unknown command XYZZY\r\n")
        #expect(await driver.send("") == "-ERR unknown command\r\n")
        #expect(await driver.send(" STAT") == "-ERR unknown command\r\n")
        #expect(await driver.send("ÉTAT") == "-ERR unknown command\r\n")
        #expect(await driver.send(String(repeating: "X", count: 30)) == "-ERR unknown command\r\n")
        #expect(await driver.send(bytes: Array("USER a\u{0}b".utf8)) == "-ERR command contains a NUL byte\r\n")
        #expect(await driver.send(bytes: [0x53, 0x54, 0x41, 0x54, 0x20, 0xFF]) == "-ERR command is not valid UTF-8\r\n")
        #expect(await driver.receive(.tooLong) ==
            "-ERR line too long; a command line is at most 255 octets\r\n")
        #expect(await driver.receive(.bareLineBreak) ==
            "-ERR line contains a bare CR or LF; end every line with CRLF\r\n")
        // The session goes on.
        #expect(await driver.send("USER alice@mail.i2p") == "+OK send PASS\r\n")
        #expect(await driver.send("PASS secret pass") == "+OK logged in, 3 messages (135 octets)\r\n")
        #expect(await driver.receive(.tooLong) ==
            "-ERR line too long; a command line is at most 255 octets\r\n")
        #expect(await driver.send("STAT") == "+OK 3 135\r\n")
        #expect(!driver.closed)
    }

    // MARK: USER / PASS

    @Test func userPassArguments() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: USER
            S: -ERR USER needs a user name
            C: USER alice bob
            S: -ERR USER takes one user name, without spaces
            C: USER \(String(repeating: "a", count: 256))
            S: -ERR user name too long
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS
            S: -ERR PASS needs a password
            C: PASS \(String(repeating: "p", count: 256))
            S: -ERR password too long
            C: PASS secret
            S: -ERR [AUTH] invalid user name or password
            C: PASS secret pass
            S: -ERR send USER first
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: +OK logged in, 3 messages (135 octets)
            """)
    }

    @Test func userNameWithControlCharacterIsRefused() async {
        let driver = SessionDriver(backend: FakePOP3Backend())
        _ = await driver.start()
        #expect(await driver.send("USER a\u{1B}[2Jb") == "-ERR user name contains control characters\r\n")
    }

    @Test func threeFailedLoginsClose() async {
        let backend = FakePOP3Backend()
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS wrong
            S: -ERR [AUTH] invalid user name or password
            C: USER nobody@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: -ERR [AUTH] invalid user name or password
            C: AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHdyb25n
            S: -ERR [AUTH] invalid user name or password; too many failed logins, closing
            == closed
            """, backend: backend)
        #expect(await backend.authenticateCalls == 3)
        #expect(await backend.lockCount == 0)
    }

    @Test func temporaryAuthenticationFailureIsNotCounted() async {
        let backend = FakePOP3Backend()
        await backend.set(.authenticationUnavailable, true)
        let driver = SessionDriver(backend: backend)
        _ = await driver.start()
        for _ in 0..<4 {
            await driver.send("USER alice@mail.i2p")
            #expect(await driver.send("PASS secret pass") ==
                "-ERR [SYS/TEMP] cannot check credentials now; try again later\r\n")
        }
        #expect(!driver.closed)
        #expect(driver.session.failedLogins == 0)
    }

    // MARK: AUTH PLAIN (RFC 5034, RFC 4616)

    @Test func authPlainWithInitialResponse() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz
            S: +OK logged in, 3 messages (135 octets)
            C: STAT
            S: +OK 3 135
            """)
    }

    @Test func authPlainWithAuthorizationIdentityEqualToUser() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: auth plain YWxpY2VAbWFpbC5pMnAAYWxpY2VAbWFpbC5pMnAAc2VjcmV0IHBhc3M=
            S: +OK logged in, 3 messages (135 octets)
            """)
    }

    @Test func authPlainWithContinuation() async {
        let driver = SessionDriver(backend: FakePOP3Backend())
        _ = await driver.start()
        #expect(await driver.send("AUTH PLAIN") == "+ \r\n")
        #expect(await driver.send("AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz") ==
            "+OK logged in, 3 messages (135 octets)\r\n")
        #expect(driver.session.state == .transaction)
    }

    @Test func authPlainCancelled() async {
        let driver = SessionDriver(backend: FakePOP3Backend())
        _ = await driver.start()
        #expect(await driver.send("AUTH PLAIN") == "+ \r\n")
        #expect(await driver.send("*") == "-ERR authentication cancelled\r\n")
        // Back to commands: "*" did not count as a failed login.
        #expect(await driver.send("STAT") == "-ERR STAT is only valid after login\r\n")
        #expect(driver.session.failedLogins == 0)
    }

    @Test func authPlainContinuationErrors() async {
        let driver = SessionDriver(backend: FakePOP3Backend())
        _ = await driver.start()
        #expect(await driver.send("AUTH PLAIN") == "+ \r\n")
        #expect(await driver.send("not base64!") == "-ERR invalid base64 in AUTH PLAIN response\r\n")
        #expect(await driver.send("AUTH PLAIN") == "+ \r\n")
        #expect(await driver.send("") == "-ERR empty AUTH PLAIN response\r\n")
        #expect(await driver.send("AUTH PLAIN") == "+ \r\n")
        // A command during the exchange is the response, not a command (RFC 5034 section 4);
        // "QUIT" happens to be valid base64.
        #expect(await driver.send("QUIT") ==
            "-ERR malformed AUTH PLAIN response; expected authzid NUL user NUL password\r\n")
        #expect(!driver.closed)
        #expect(await driver.send("AUTH PLAIN") == "+ \r\n")
        #expect(await driver.receive(.tooLong) ==
            "-ERR authentication cancelled: line too long; a command line is at most 255 octets\r\n")
        #expect(await driver.send("AUTH PLAIN") == "+ \r\n")
        #expect(await driver.receive(.bareLineBreak) ==
            "-ERR authentication cancelled: line contains a bare CR or LF; end every line with CRLF\r\n")
        #expect(!driver.closed)
        #expect(driver.session.failedLogins == 0)
    }

    @Test func authPlainInitialResponseErrors() async {
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: AUTH PLAIN =
            S: -ERR empty AUTH PLAIN response
            C: AUTH PLAIN AGFsaWNl*
            S: -ERR invalid base64 in AUTH PLAIN response
            C: AUTH PLAIN YWxpY2U
            S: -ERR invalid base64 in AUTH PLAIN response
            C: AUTH PLAIN YWxpY2U=
            S: -ERR malformed AUTH PLAIN response; expected authzid NUL user NUL password
            C: AUTH PLAIN AAA=
            S: -ERR malformed AUTH PLAIN response; expected authzid NUL user NUL password
            C: AUTH CRAM-MD5
            S: -ERR unsupported SASL mechanism; use AUTH PLAIN
            C: AUTH PLAIN a b
            S: -ERR too many arguments for AUTH
            C: AUTH
            S: +OK SASL mechanisms follow
            S: PLAIN
            S: .
            """)
    }

    @Test func authPlainAsAnotherUserIsRefused() async {
        let backend = FakePOP3Backend()
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: AUTH PLAIN Ym9iQG1haWwuaTJwAGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz
            S: -ERR [AUTH] authorization identity must be empty or the user name
            """, backend: backend)
        #expect(await backend.authenticateCalls == 0)
    }

    // MARK: Locks (POP-2)

    @Test func maildropInUse() async {
        let backend = FakePOP3Backend()
        await backend.holdLock("alice@mail.i2p")
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: -ERR [IN-USE] maildrop is in use by another session; try again later
            C: STAT
            S: -ERR STAT is only valid after login
            C: QUIT
            S: +OK Postern POP3 signing off
            == closed
            """, backend: backend)
        #expect(await backend.unlockCount == 0)
        #expect(await backend.locked == ["alice@mail.i2p"])
    }

    @Test func droppedSessionDeletesNothingAndReleasesTheLock() async {
        let backend = FakePOP3Backend()
        let driver = SessionDriver(backend: backend)
        _ = await driver.start()
        await driver.send("USER alice@mail.i2p")
        await driver.send("PASS secret pass")
        #expect(await driver.send("DELE 1") == "+OK message 1 deleted\r\n")
        await driver.dropConnection()
        await driver.dropConnection()  // a second report changes nothing
        #expect(await backend.deleteCalls.isEmpty)
        #expect(await backend.messages(in: "alice@mail.i2p").count == 3)
        #expect(await backend.locked.isEmpty)
        #expect(await backend.unlockCount == 1)
        #expect(driver.session.isClosed)
    }

    @Test func connectionLostWhileAuthenticatingTakesNoLock() {
        var session = POP3Session()
        _ = session.start()
        _ = session.receive(.line(ByteBuffer(string: "AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz")))
        #expect(session.isAwaitingEffect)
        #expect(session.connectionClosed().isEmpty)
        #expect(session.authenticated(.success(mailbox: "alice@mail.i2p")).isEmpty)
        #expect(session.isClosed && !session.isAwaitingEffect)
    }

    @Test func connectionLostWhileOpeningReleasesTheLockOnce() {
        var session = POP3Session()
        _ = session.receive(.line(ByteBuffer(string: "AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz")))
        #expect(session.authenticated(.success(mailbox: "m")) == [.lockAndList(mailbox: "m")])
        #expect(session.connectionClosed().isEmpty)
        #expect(session.maildropOpened(.opened([])) == [.unlock(mailbox: "m")])
        #expect(session.unlocked().isEmpty)
        #expect(session.connectionClosed().isEmpty)
        #expect(session.isClosed && !session.isAwaitingEffect)
    }

    @Test func connectionLostDuringRetrReleasesTheLock() {
        var session = POP3Session()
        _ = session.receive(.line(ByteBuffer(string: "AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz")))
        _ = session.authenticated(.success(mailbox: "m"))
        _ = session.maildropOpened(.opened([POP3MessageInfo(uid: "u", size: 3)]))
        #expect(session.receive(.line(ByteBuffer(string: "RETR 1"))) ==
            [.fetch(mailbox: "m", uid: "u", kind: .retr)])
        #expect(session.connectionClosed().isEmpty)
        #expect(session.fetched(.message(ByteBuffer(string: "a\r\n"))) == [.unlock(mailbox: "m")])
        #expect(session.unlocked().isEmpty)
    }

    @Test func listingFailureReleasesTheLockBeforeAnswering() async {
        let backend = FakePOP3Backend()
        await backend.set(.listingFails, true)
        let driver = SessionDriver(backend: backend)
        _ = await driver.start()
        await driver.send("USER alice@mail.i2p")
        #expect(await driver.send("PASS secret pass") ==
            "-ERR [SYS/TEMP] maildrop cannot be read now; try again later\r\n")
        #expect(driver.effects.last == .unlock(mailbox: "alice@mail.i2p"))
        #expect(await backend.locked.isEmpty)
        #expect(driver.session.state == .authorization)
        #expect(driver.session.failedLogins == 0)
        // The client may try again (RFC 1939 section 7, PASS).
        await backend.set(.listingFails, false)
        await driver.send("USER alice@mail.i2p")
        #expect(await driver.send("PASS secret pass") == "+OK logged in, 3 messages (135 octets)\r\n")
    }

    @Test func fetchFailure() async {
        let backend = FakePOP3Backend()
        await backend.set(.fetchFails, true)
        let driver = SessionDriver(backend: backend)
        _ = await driver.start()
        await driver.send("USER alice@mail.i2p")
        await driver.send("PASS secret pass")
        #expect(await driver.send("RETR 1") ==
            "-ERR [SYS/TEMP] message cannot be read now; try again later\r\n")
        #expect(await driver.send("TOP 1 1") ==
            "-ERR [SYS/TEMP] message cannot be read now; try again later\r\n")
        #expect(await driver.send("STAT") == "+OK 3 135\r\n")
    }

    @Test func deletionFailureOnQuit() async {
        let backend = FakePOP3Backend()
        await backend.set(.deletionFails, true)
        await expectTranscript("""
            S: +OK Postern POP3 ready
            C: USER alice@mail.i2p
            S: +OK send PASS
            C: PASS secret pass
            S: +OK logged in, 3 messages (135 octets)
            C: DELE 3
            S: +OK message 3 deleted
            C: QUIT
            S: -ERR [SYS/TEMP] some deleted messages not removed
            == closed
            """, backend: backend)
        #expect(await backend.locked.isEmpty)
        #expect(await backend.unlockCount == 1)
    }

    @Test func quitReleasesTheLockBeforeAnswering() async {
        let backend = FakePOP3Backend()
        let driver = SessionDriver(backend: backend)
        _ = await driver.start()
        await driver.send("USER alice@mail.i2p")
        await driver.send("PASS secret pass")
        await driver.send("DELE 1")
        #expect(await driver.send("QUIT") == "+OK Postern POP3 signing off (1 message deleted)\r\n")
        #expect(driver.effects.suffix(2) == [
            .delete(mailbox: "alice@mail.i2p", uids: ["uid-1"]), .unlock(mailbox: "alice@mail.i2p"),
        ])
        await driver.dropConnection()
        #expect(await backend.unlockCount == 1)
    }

    // MARK: Autologout and shutdown

    @Test func autologoutClosesSilentlyWithoutUpdate() async {
        let backend = FakePOP3Backend()
        let driver = SessionDriver(backend: backend)
        _ = await driver.start()
        await driver.send("USER alice@mail.i2p")
        await driver.send("PASS secret pass")
        await driver.send("DELE 1")
        // RFC 1939 section 3: no response, no UPDATE.
        #expect(await driver.autologout() == "")
        #expect(driver.closed)
        await driver.dropConnection()
        #expect(await backend.deleteCalls.isEmpty)
        #expect(await backend.locked.isEmpty)
    }

    @Test func autologoutWaitsForAPendingEffect() {
        var session = POP3Session()
        _ = session.receive(.line(ByteBuffer(string: "AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz")))
        #expect(session.autologoutExpired().isEmpty)
        #expect(!session.isClosed)
    }

    @Test func shutdownWhileIdle() async {
        let backend = FakePOP3Backend()
        let driver = SessionDriver(backend: backend)
        _ = await driver.start()
        await driver.send("USER alice@mail.i2p")
        await driver.send("PASS secret pass")
        await driver.send("DELE 1")
        #expect(await driver.shutdown() == "-ERR [SYS/TEMP] server shutting down\r\n")
        #expect(driver.closed)
        await driver.dropConnection()
        #expect(await backend.deleteCalls.isEmpty)
        #expect(await backend.locked.isEmpty)
    }

    @Test func shutdownDuringAnEffectEndsAfterIt() {
        var session = POP3Session()
        _ = session.receive(.line(ByteBuffer(string: "AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz")))
        _ = session.authenticated(.success(mailbox: "m"))
        _ = session.maildropOpened(.opened([POP3MessageInfo(uid: "u", size: 3)]))
        _ = session.receive(.line(ByteBuffer(string: "RETR 1")))
        #expect(session.serverShuttingDown().isEmpty)
        let actions = session.fetched(.message(ByteBuffer(string: "a\r\n")))
        #expect(actions == [
            .send(ByteBuffer(string: "+OK 3 octets\r\na\r\n.\r\n")),
            .send(ByteBuffer(string: "-ERR [SYS/TEMP] server shutting down\r\n")),
            .close,
        ])
        #expect(session.connectionClosed() == [.unlock(mailbox: "m")])
    }

    @Test func shutdownDuringUpdateLetsQuitFinish() {
        var session = POP3Session()
        _ = session.receive(.line(ByteBuffer(string: "AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz")))
        _ = session.authenticated(.success(mailbox: "m"))
        _ = session.maildropOpened(.opened([POP3MessageInfo(uid: "u", size: 3)]))
        _ = session.receive(.line(ByteBuffer(string: "DELE 1")))
        #expect(session.receive(.line(ByteBuffer(string: "QUIT"))) == [.delete(mailbox: "m", uids: ["u"])])
        #expect(session.serverShuttingDown().isEmpty)
        #expect(session.deleted(succeeded: true) == [.unlock(mailbox: "m")])
        #expect(session.unlocked() == [
            .send(ByteBuffer(string: "+OK Postern POP3 signing off (1 message deleted)\r\n")), .close,
        ])
        #expect(session.connectionClosed().isEmpty)
    }

    // MARK: Misc

    @Test func noInputIsTakenWhileAnEffectIsPending() {
        var session = POP3Session()
        _ = session.receive(.line(ByteBuffer(string: "AUTH PLAIN AGFsaWNlQG1haWwuaTJwAHNlY3JldCBwYXNz")))
        #expect(session.receive(.line(ByteBuffer(string: "STAT"))).isEmpty)
        // A result nobody asked for is ignored.
        #expect(session.fetched(.failed).isEmpty)
        #expect(session.unlocked().isEmpty)
    }

    @Test func actionDescriptionsRedactCredentials() {
        let action = POP3Session.Action.authenticate(username: "alice@mail.i2p", password: "secret pass")
        #expect(!action.description.contains("alice"))
        #expect(!action.description.contains("secret"))
        #expect(!POP3Session.Action.lockAndList(mailbox: "alice@mail.i2p").description.contains("alice"))
    }
}
