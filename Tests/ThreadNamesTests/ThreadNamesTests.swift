import Foundation
import Synchronization
import Testing
import ThreadNames

@Suite struct ThreadNamesTests {
    /// The OS's name of the calling thread.
    static func osName() -> String {
        ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
    }

    /// Starts `count` threads that each run `body` first thing and then read their OS name;
    /// returns the names read, by thread number.
    static func namesRead(count: Int, _ body: @escaping @Sendable (Int) -> Void) -> [Int: String] {
        let names = Mutex<[Int: String]>([:])
        let done = DispatchGroup()
        for number in 0..<count {
            done.enter()
            Thread {
                body(number)
                let name = osName()
                names.withLock { $0[number] = name }
                done.leave()
            }.start()
        }
        done.wait()
        return names.withLock { $0 }
    }

    @Test("a thread that names itself first thing has that name, however soon it runs after its start")
    func everyThreadKeepsItsName() {
        let names = ThreadNamesTests.namesRead(count: 300) { nameThisThread("t-\($0)") }
        let lost = names.filter { $0.value != "t-\($0.key)" }
        #expect(names.count == 300)
        #expect(lost.isEmpty, "\(lost.count) threads lost their names, e.g. \(lost.first.map { "\($0)" } ?? "")")
    }

    @Test("a name longer than Linux's 15 bytes is cut to its first 15 bytes' whole characters, not dropped", arguments: [
        ("webhooky-listener", "webhooky-listen"), ("webhooky-http", "webhooky-http"), ("ééééééééé", "ééééééé"),
    ])
    func longNamesAreCut(name: String, shown: String) {
        #expect(ThreadNamesTests.namesRead(count: 1) { _ in nameThisThread(name) } == [0: shown])
    }
}
