import Foundation
import Log
import Synchronization
import Testing

@Suite struct LogFormatTests {
    func line(_ metadata: KeyValuePairs<String, any CustomStringConvertible>) -> String {
        let lines = Mutex<[String]>([])
        let logger = Logger(level: .info) { line in lines.withLock { $0.append(line) } }
        logger.info("delivery succeeded", metadata)
        return lines.withLock { $0.first ?? "" }
    }

    @Test func aLineIsAnISOTimestampTheLevelTheMessageAndKeyValuePairs() throws {
        let text = line(["delivery": 42, "status": 200])
        let pattern = #/^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z info     delivery succeeded delivery=42 status=200$/#
        let match = try #require(text.wholeMatch(of: pattern), "\(text)")
        let year = Calendar(identifier: .gregorian).component(.year, from: Date())
        #expect(Int(match.1) == year || Int(match.1) == year - 1)
        #expect((1...12).contains(Int(match.2)!) && (1...31).contains(Int(match.3)!) && Int(match.4)! < 24)
    }

    @Test(arguments: [
        ("plain", "plain"),
        ("two words", #""two words""#),
        (#"say "hi""#, #""say \"hi\"""#),
        ("a=b", #""a=b""#),
        ("line\nbreak", #""line\nbreak""#),
        ("carriage\rreturn", #""carriage\rreturn""#),
        ("crlf\r\nline", #""crlf\r\nline""#),
        ("back\\slash", "back\\slash"),
        ("čeština", "čeština"),
        ("unicode\u{2028}separator", "\"unicode\u{2028}separator\""),
        ("", #""""#),
    ])
    func valuesAreQuotedOnlyWhenTheyMustBe(value: String, written: String) {
        #expect(line(["error": value]).hasSuffix(" error=" + written))
    }
}

@Suite struct LogBufferTests {
    @Test("a buffered logger holds its lines until flush, then writes them in order, with the logger's level and metadata")
    func holdsUntilFlush() {
        let lines = Mutex<[String]>([])
        let logger = Logger(level: .info) { line in lines.withLock { $0.append(line) } }.with("worker", "w1")
        let (buffered, buffer) = logger.buffered()
        buffered.info("first", ["n": 1])
        buffered.debug("below the level")
        buffered.warning("second")
        #expect(lines.withLock { $0.isEmpty }, "nothing written before flush")
        buffer.flush()
        let written = lines.withLock { $0 }
        #expect(written.count == 2)
        #expect(written.first?.hasSuffix("info     first worker=w1 n=1") == true, "\(written)")
        #expect(written.last?.hasSuffix("warning  second worker=w1") == true, "\(written)")
        buffer.flush()
        #expect(lines.withLock { $0.count } == 2, "a second flush writes nothing again")
    }

    @Test("a line below the level costs nothing: neither its message nor its metadata is evaluated")
    func disabledLinesAreNotBuilt() {
        let evaluated = Mutex(0)
        func value() -> Int { evaluated.withLock { $0 += 1; return $0 } }
        let logger = Logger(level: .info) { _ in }
        logger.debug("delivery \(value())", ["delivery": value(), "status": value()])
        #expect(evaluated.withLock { $0 } == 0)
        logger.info("delivery \(value())", ["delivery": value()])
        #expect(evaluated.withLock { $0 } == 2)
    }

    @Test("a buffer that is never flushed writes by itself every 1,000 lines")
    func boundedWithoutFlush() {
        let count = Mutex(0)
        let (buffered, _) = Logger(level: .info) { _ in count.withLock { $0 += 1 } }.buffered()
        for n in 0..<2_500 { buffered.info("line", ["n": n]) }
        #expect(count.withLock { $0 } == 2_000)
    }
}
