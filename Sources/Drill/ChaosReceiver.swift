import Foundation
import LoopbackReceiver
import Synchronization

/// A receiver on 127.0.0.1 that misbehaves at random: errors, silence past the timeout,
/// reset connections, slow answers. It remembers what it answered to each `webhook-id`.
final class ChaosReceiver: Sendable {
    /// What the receiver did with one request.
    enum Answer: String, Sendable {
        case ok, error500, timeout, reset, slowOK
        var succeeded: Bool { self == .ok || self == .slowOK }
    }

    struct Receipt: Sendable {
        let answer: Answer
        let arrivedAt: Double
    }

    /// Percentages of each misbehaviour; the rest is answered 200 at once.
    struct Mix: Sendable {
        var error500 = 8
        var timeout = 3
        var reset = 4
        var slow = 10
    }

    /// The receipts by `webhook-id`, and the chaos's random source.
    private final class Memory: Sendable {
        let receipts = Mutex<[String: [Receipt]]>([:])
        let random: Mutex<DrillRandom>
        init(seed: UInt64) { random = Mutex(DrillRandom(seed: seed)) }
    }

    let receiver: LoopbackReceiver
    private let memory: Memory

    init(mix: Mix, seed: UInt64, slowAnswer: Duration) throws {
        let memory = Memory(seed: seed)
        self.memory = memory
        self.receiver = try LoopbackReceiver { request, _ in
            let roll = memory.random.withLock { Int.random(in: 0..<100, using: &$0) }
            let answer: Answer
            switch roll {
            case ..<mix.error500: answer = .error500
            case ..<(mix.error500 + mix.timeout): answer = .timeout
            case ..<(mix.error500 + mix.timeout + mix.reset): answer = .reset
            case ..<(mix.error500 + mix.timeout + mix.reset + mix.slow): answer = .slowOK
            default: answer = .ok
            }
            let id = request.header("webhook-id") ?? "?"
            memory.receipts.withLock { $0[id, default: []].append(Receipt(answer: answer, arrivedAt: request.receivedAt)) }
            switch answer {
            case .ok: return .ok
            case .error500: return .status(500, body: "chaos")
            case .timeout: return .hang
            case .reset: return .reset
            case .slowOK: return .respond(status: 200, body: "slow ok", delay: slowAnswer)
            }
        }
    }

    var baseURL: String { receiver.baseURL }

    /// Every receipt so far, by `webhook-id`.
    var all: [String: [Receipt]] { memory.receipts.withLock { $0 } }

    func stop() { receiver.stop() }
}

/// SplitMix64, so that a drill can be repeated with the same seed.
struct DrillRandom: RandomNumberGenerator, Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
