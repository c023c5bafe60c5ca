import Dispatch
import LocalPostgres
import Postgres
import Synchronization
import TestSupport
import Testing

@Suite(.timeLimit(.minutes(10))) struct ConnectionTests {
    @Test func parametersAreBoundAndValuesComeBackAsExactText() throws {
        let connection = try TestCluster.newEmptyDatabase().connect()
        let result = try connection.query(
            "SELECT $1::numeric, $2::bigint, $3::text IS NULL, $4::jsonb -> 'a', $5::text",
            ["12345678901234.56", "9007199254740993", nil, #"{"a": 9007199254740993.10}"#, "it's \"quoted\"; DROP TABLE x; --"]
        )
        #expect(result.rows == [["12345678901234.56", "9007199254740993", "t", "9007199254740993.10", "it's \"quoted\"; DROP TABLE x; --"]])
        #expect(result.columnCount == 5)
    }

    @Test("parameters of every length arrive whole, an empty one empty and a missing one NULL")
    func parametersOfEveryLengthArriveWhole() throws {
        let connection = try TestCluster.newEmptyDatabase().connect()
        let long = String(repeating: "žluťoučký kůň ", count: 5_000)
        let result = try connection.query(
            "SELECT $1::text = '', $2::text IS NULL, length($3::text), $3::text = repeat('žluťoučký kůň ', 5000), $4::text",
            ["", nil, long, "a"])
        #expect(result.rows == [["t", "t", "70000", "t", "a"]])
    }

    @Test("a dead peer is noticed: keepalives and tcp_user_timeout by default, the DBA's own values win")
    func deadPeerTimeoutsAreSetUnlessGiven() throws {
        let database = try TestCluster.newEmptyDatabase()
        let connection = try database.connect()
        #expect(connection.option("tcp_user_timeout") == "60000")
        #expect(connection.option("keepalives_idle") == "30")
        let own = try Connection(conninfo: database.conninfo + " tcp_user_timeout=5000 keepalives_idle=7")
        #expect(own.option("tcp_user_timeout") == "5000")
        #expect(own.option("keepalives_idle") == "7")
        #expect(own.option("no_such_option") == nil)
    }

    @Test func statementErrorsCarrySQLStateDetailAndHint() throws {
        let connection = try TestCluster.newEmptyDatabase().connect()
        do {
            try connection.execute("DO $$ BEGIN RAISE EXCEPTION 'nope' USING DETAIL = 'the detail', HINT = 'the hint', ERRCODE = '22023'; END $$")
            Issue.record("no error")
        } catch {
            #expect(error.code == .statementFailed)
            #expect(error.message == "nope")
            #expect(error.sqlState == "22023")
            #expect(error.detail == "the detail")
            #expect(error.hint == "the hint")
            #expect(!error.isTransient)
        }
        // The connection is still usable after a failed statement.
        #expect(try connection.query("SELECT 1").scalar == "1")
    }

    @Test("a statement is cancelled from another thread; the connection stays usable")
    func statementIsCancelledFromAnotherThread() throws {
        let connection = try TestCluster.newEmptyDatabase().connect()
        let canceller = try #require(connection.makeCanceller())
        let started = ContinuousClock.now
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.3) { canceller.cancel() }
        do {
            try connection.query("SELECT pg_sleep(30)")
            Issue.record("not cancelled")
        } catch {
            #expect(error.sqlState == "57014")
        }
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(try connection.query("SELECT 1").scalar == "1")
    }

    @Test func affectedRowsAreReported() throws {
        let connection = try TestCluster.newEmptyDatabase().connect()
        try connection.execute("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 7)")
        #expect(try connection.query("UPDATE t SET x = x + 1 WHERE x > $1", ["2"]).affectedRows == 5)
    }

    @Test func noticesGoToTheHandlerNotStderr() throws {
        let connection = try TestCluster.newEmptyDatabase().connect()
        let notices = Mutex<[String]>([])
        connection.onNotice { message in notices.withLock { $0.append(message) } }
        try connection.execute("DO $$ BEGIN RAISE NOTICE 'hello %', 42; END $$")
        #expect(notices.withLock { $0 } == ["NOTICE:  hello 42"])
    }

    @Test func notificationsArrive() throws {
        let database = try TestCluster.newEmptyDatabase()
        let listener = try database.connect()
        try listener.listen("some channel")
        let sender = try database.connect()
        try sender.query("SELECT pg_notify('some channel', $1)", ["payload ✓"])
        var received: [Notification] = []
        for _ in 0..<20 where received.isEmpty {
            received = try listener.waitForNotifications(timeout: .milliseconds(100))
        }
        #expect(received.map(\.channel) == ["some channel"])
        #expect(received.map(\.payload) == ["payload ✓"])
        #expect(received.first?.senderPID == sender.backendPID)
    }

    @Test func aFailedLoginNeverShowsThePassword() throws {
        let cluster = try TestCluster.shared()
        do {
            _ = try Connection(conninfo: "host=\(cluster.socketDirectory) port=\(cluster.port) user=no_such_user password=Sup3rSecret dbname=postgres")
            Issue.record("connected as a user that does not exist")
        } catch {
            #expect(error.code == .connectionFailed)
            #expect(error.message.contains("no_such_user"))
            #expect(!error.message.contains("Sup3rSecret"))
            #expect(error.isTransient)
        }
    }

    @Test("a URL whose password holds an @ or a / that is not percent-encoded: libpq takes a piece of it for the host, the port or the database, and quotes that back; it is hidden",
          arguments: [
              // libpq ends the user information at the first @: "ssW0rdPiece@localhost" is the host.
              ("postgresql://postgres:p@ssW0rdPiece@localhost:1/postgres", "could not translate host name \"…\" to address"),
              // libpq looks for user information only before the first /: "pa55" is the port.
              ("postgresql://postgres:pa55/W0rdPiece@localhost/postgres", "invalid integer value \"…\" for connection option \"port\""),
              // A piece split again at a ":": "W0rdPiece@localhost" is the port.
              ("postgresql://postgres:p@ss:W0rdPiece@localhost/postgres", "invalid integer value \"…\" for connection option \"port\""),
              // ... or "pa55@W0rdPiece:x": the host "W0rdPiece", the port "x@localhost".
              ("postgresql://postgres:pa55@W0rdPiece:x@localhost/postgres", "invalid integer value \"…\" for connection option \"port\""),
          ])
    func aPasswordSplitByLibpqIsNotShown(url: String, shown: String) throws {
        do {
            _ = try Connection(conninfo: url)
            Issue.record("connected with \(url)")
        } catch {
            #expect(error.code == .connectionFailed)
            #expect(error.message.contains(shown), "\(error.message)")
            #expect(error.message.hasSuffix("(in a postgresql:// URL a password's @ is written %40 and its / %2F)"), "\(error.message)")
            for piece in ["ssW0rdPiece", "pa55", "W0rdPiece", "x@localhost"] {
                #expect(!error.message.contains(piece), "\(error.message)")
            }
        }
    }

    @Test func aLostConnectionIsReportedAsSuch() throws {
        let database = try TestCluster.newEmptyDatabase()
        let victim = try database.connect()
        let killer = try database.connect()
        try killer.query("SELECT pg_terminate_backend($1)", [String(victim.backendPID)])
        do {
            try victim.query("SELECT 1")
            Issue.record("a terminated connection still answered")
        } catch {
            #expect(error.isTransient)
        }
        #expect(!victim.isConnected)
    }

    @Test("a connection ended by pg_terminate_backend while idle says why (the server's reason), not libpq's guess of a crash: for a statement, a prepared one, a script, and a listener waiting for notifications, whose FATAL message is no notice", arguments: ["query", "prepared", "execute", "listen"])
    func aTerminatedConnectionSaysWhy(_ how: String) throws {
        let database = try TestCluster.newEmptyDatabase()
        let victim = try database.connect()
        let notices = Mutex<[String]>([])
        victim.onNotice { message in notices.withLock { $0.append(message) } }
        if how == "listen" { try victim.listen("somewhere") }
        try database.connect().query("SELECT pg_terminate_backend($1)", [String(victim.backendPID)])
        do {
            switch how {
            case "query": try victim.query("SELECT 1")
            case "prepared": try victim.query(prepared: "one", "SELECT 1")
            case "execute": try victim.execute("SELECT 1; SELECT 2")
            default: for _ in 0..<10 { _ = try victim.waitForNotifications(timeout: .milliseconds(500)) }
            }
            Issue.record("a terminated connection still answered")
        } catch {
            #expect(error.code == .connectionLost)
            #expect(error.isTransient)
            #expect(error.message == "terminating connection due to administrator command (the server closed the connection)", "\(error.message)")
        }
        #expect(notices.withLock { $0 }.isEmpty)
    }

    @Test("a notice whose text holds a line 'FATAL: ...' (its detail is anyone's text) is a notice like any other: it reaches the handler, and a later loss does not quote it as the server's reason")
    func aNoticeIsNoFatalMessage() throws {
        let database = try TestCluster.newEmptyDatabase()
        let victim = try database.connect()
        let notices = Mutex<[String]>([])
        victim.onNotice { message in notices.withLock { $0.append(message) } }
        try victim.execute(#"DO $$ BEGIN RAISE NOTICE 'progress' USING DETAIL = E'step 3\nFATAL: made up'; END $$"#)
        #expect(notices.withLock { $0 }.count == 1)
        #expect(notices.withLock { $0 }.first?.contains("FATAL: made up") == true, "\(notices.withLock { $0 })")
        try victim.listen("somewhere")
        try database.connect().query("SELECT pg_terminate_backend($1)", [String(victim.backendPID)])
        do {
            for _ in 0..<10 { _ = try victim.waitForNotifications(timeout: .milliseconds(500)) }
            Issue.record("a terminated connection still answered")
        } catch {
            #expect(error.message == "terminating connection due to administrator command (the server closed the connection)", "\(error.message)")
        }
        // libpq's message of a statement's loss: only its first line can be the server's FATAL.
        #expect(Connection.describeLoss("ERROR:  x\nDETAIL:  y\nFATAL: made up\nserver closed the connection unexpectedly", fatalNotice: nil)
                == "ERROR:  x\nDETAIL:  y\nFATAL: made up\nserver closed the connection unexpectedly")
    }

    @Test("reading past a result's rows or columns gives nil without asking libpq, whose complaint ('row number 0 is out of range') went to the connection's notice handler, even after the connection was gone")
    func readingPastAResultIsNil() throws {
        let database = try TestCluster.newEmptyDatabase()
        var connection: Connection? = try database.connect()
        let notices = Mutex<[String]>([])
        connection?.onNotice { message in notices.withLock { $0.append(message) } }
        let empty = try #require(try connection?.query("SELECT 1 AS one WHERE false"))
        let one = try #require(try connection?.query("SELECT 'x' AS one"))
        #expect(empty[0, 0] == nil)
        #expect(one[0, 1] == nil && one[1, 0] == nil && one[-1, 0] == nil)
        #expect(one.withBytes(row: 0, column: 1) { $0 == nil })
        #expect(one.columnName(0) == "one" && one.columnName(1) == "")  // libpq gives NULL there
        #expect(notices.withLock { $0 }.isEmpty, "\(notices.withLock { $0 })")
        connection = nil  // the results outlive it
        #expect(empty[0, 0] == nil && one[0, 0] == "x")
    }

    @Test("a lost connection's message: the server's FATAL reason when it gave one, else libpq's words")
    func lossMessages() {
        let libpq = "server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request."
        #expect(Connection.describeLoss("FATAL:  terminating connection due to idle-session timeout\n" + libpq, fatalNotice: nil)
                == "terminating connection due to idle-session timeout (the server closed the connection)")
        #expect(Connection.describeLoss(libpq, fatalNotice: "terminating connection due to administrator command")
                == "terminating connection due to administrator command (the server closed the connection)")
        #expect(Connection.describeLoss(libpq, fatalNotice: nil) == libpq)
        #expect(Connection.describeLoss("could not receive data from server: Connection reset by peer", fatalNotice: nil) == "could not receive data from server: Connection reset by peer")
    }
}
