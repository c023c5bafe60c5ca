import Operations
import Testing

@Suite struct AttemptWindowTests {
    @Test("an attempt that commits after higher ids were shown is still shown, once")
    func lateCommitsAreShownOnce() {
        var window = AttemptWindow(highest: 100, now: 0)
        #expect(window.floor(at: 0) == 0, "ids below the start may still commit")
        window.markShown(Array(1...100))
        #expect(window.admit([101, 102, 104], at: 0.5) == [101, 102, 104])
        #expect(window.admit([101, 102, 104], at: 1.0) == [])
        #expect(window.floor(at: 1.5) < 103, "103 is asked for again")
        #expect(window.admit([101, 102, 103, 104, 105], at: 1.5) == [103, 105])
        #expect(window.highest == 105)
    }

    @Test("the floor follows the highest id seen `settle` seconds ago, and is never further than maximumIDs below the highest")
    func floorMovesUp() {
        var window = AttemptWindow(highest: 0, now: 0, settle: 10, maximumIDs: 1000)
        _ = window.admit([1, 2, 3], at: 1)
        _ = window.admit([4, 5], at: 5)
        #expect(window.floor(at: 5) == 0)
        #expect(window.floor(at: 11) == 3, "what was the highest at 1 s, 10 s before")
        #expect(window.floor(at: 16) == 5)
        _ = window.admit([5000], at: 16)
        #expect(window.floor(at: 16) == 4000, "a busy database: at most 1,000 ids are asked for again")
    }

    @Test("what it remembers stays bounded")
    func memoryIsBounded() {
        var window = AttemptWindow(highest: 0, now: 0, settle: 10, maximumIDs: 10_000)
        var next: Int64 = 1
        for second in 0..<120 {
            let ids = Array(next..<(next + 500))
            next += 500
            #expect(window.admit(ids, at: Double(second)).count == 500)
        }
        #expect(window.rememberedCount <= 10_000)
        #expect(window.floor(at: 120) >= 60_000 - 10_000)
    }
}
