import Postgres

/// What the drill found.
public struct DrillReport: Sendable {
    public var events = 0
    public var eventsInDatabase = 0
    public var expected = 0
    public var succeeded = 0
    public var dead: [(reason: String, count: Int)] = []
    /// Expected deliveries that neither reached the receiver with a 2xx nor ended dead.
    public var lost = 0
    public var lostExamples: [String] = []
    /// Deliveries the receiver got more than once, by reason.
    public var duplicates: [(reason: String, count: Int)] = []
    public var worstDelay = 0.0
    public var medianDelay = 0.0
    public var p99Delay = 0.0
    public var emitRetries = 0
    public var elapsed: Duration = .zero
    public var seed: UInt64 = 0

    static func build(connection: Connection, committed: Int, emitRetries: Int, receipts: [String: [ChaosReceiver.Receipt]],
                      configuration: FaultDrill.Configuration, elapsed: Duration) throws -> DrillReport {
        var report = DrillReport()
        report.events = committed
        report.emitRetries = emitRetries
        report.elapsed = elapsed
        report.seed = configuration.seed
        report.eventsInDatabase = Int(try connection.query("SELECT count(*) FROM webhooky.events").scalar ?? "0") ?? 0
        // Every event belongs to one e-shop, whose one webhook must get one delivery.
        report.expected = report.eventsInDatabase
        let rows = try connection.query("""
            SELECT e.id, d.id, d.state, d.last_error, extract(epoch FROM e.created_at), webhooky.message_id(d.id)
              FROM webhooky.events e LEFT JOIN webhooky.deliveries d ON d.event_id = e.id
             ORDER BY e.id
            """)
        var deadReasons: [String: Int] = [:]
        var delays: [Double] = []
        var lost: [String] = []
        for row in 0..<rows.rowCount {
            guard let deliveryID = rows[row, 1] else {
                lost.append("event \(rows[row, 0] ?? "?") has no delivery")
                continue
            }
            let state = rows[row, 2] ?? ""
            let created = Double(rows[row, 4] ?? "") ?? 0
            let gotOK = receipts[rows[row, 5] ?? ""]?.first { $0.answer.succeeded }
            switch state {
            case "succeeded":
                if let gotOK {
                    report.succeeded += 1
                    delays.append(gotOK.arrivedAt - created)
                } else {
                    lost.append("delivery \(deliveryID) is succeeded but the receiver never answered it 2xx")
                }
            case "dead":
                deadReasons[rows[row, 3] ?? "?", default: 0] += 1
            default:
                lost.append("delivery \(deliveryID) is still \(state)")
            }
        }
        report.lost = lost.count
        if report.eventsInDatabase < committed {
            // Committed events with no row at all: each is a lost delivery.
            report.lost += committed - report.eventsInDatabase
            lost.insert("\(committed - report.eventsInDatabase) committed events are missing from webhooky.events", at: 0)
        }
        report.lostExamples = Array(lost.prefix(10))
        report.dead = deadReasons.sorted { $0.value > $1.value }.map { ($0.key, $0.value) }

        var afterFailure = 0
        var afterSuccess = 0
        for (_, list) in receipts where list.count > 1 {
            let firstSuccess = list.firstIndex { $0.answer.succeeded }
            if let firstSuccess, firstSuccess < list.count - 1 {
                afterSuccess += 1
            } else {
                afterFailure += 1
            }
        }
        report.duplicates = [
            ("the endpoint failed, timed out or reset, so Webhooky retried (at-least-once, as designed)", afterFailure),
            ("sent again after a 2xx: the worker was killed or PostgreSQL restarted before the outcome was recorded", afterSuccess),
        ].filter { $0.1 > 0 }

        delays.sort()
        if !delays.isEmpty {
            report.worstDelay = delays.last ?? 0
            report.medianDelay = delays[delays.count / 2]
            report.p99Delay = delays[min(delays.count - 1, delays.count * 99 / 100)]
        }
        return report
    }

    /// The report as a Markdown table.
    public var table: String {
        func format(_ seconds: Double) -> String { seconds < 1 ? "\(Int((seconds * 1000).rounded())) ms" : "\((seconds * 10).rounded() / 10) s" }
        var lines = [
            "| figure | value |",
            "|---|---|",
            "| events committed | \(events) (emitter retried \(emitRetries) statements cut off by restarts) |",
            "| events in webhooky.events | \(eventsInDatabase) |",
            "| deliveries expected | \(expected) |",
            "| succeeded (receiver answered 2xx) | \(succeeded) |",
            "| dead | \(dead.reduce(0) { $0 + $1.count })\(dead.isEmpty ? "" : ": " + dead.map { "\($0.count) × \($0.reason)" }.joined(separator: "; ")) |",
            "| **lost** | **\(lost)** |",
            "| received more than once | \(duplicates.reduce(0) { $0 + $1.count })\(duplicates.isEmpty ? "" : ": " + duplicates.map { "\($0.count) × \($0.reason)" }.joined(separator: "; ")) |",
            "| commit to success, worst | \(format(worstDelay)) (median \(format(medianDelay)), p99 \(format(p99Delay))) |",
            "| drill time | \(format(DrillReport.seconds(elapsed))) (seed \(seed)) |",
        ]
        if !lostExamples.isEmpty { lines.append("\nLost: " + lostExamples.joined(separator: "; ")) }
        return lines.joined(separator: "\n")
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
