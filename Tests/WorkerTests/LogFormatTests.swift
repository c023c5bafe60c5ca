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
