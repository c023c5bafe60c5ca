import Delivery
import Testing
@testable import Worker

/// The per-webhook health summary the record statement reads.
@Suite struct WebhookBatchHealthTests {
    private static func record(webhook: Int64, at startedAt: Double, status: Int) -> AttemptRecord {
        let completion = (200...299).contains(status)
            ? DeliveryStateMachine.Completion(state: .succeeded, status: status)
            : DeliveryStateMachine.Completion(state: .pending, retryIn: .seconds(5), status: status, error: "HTTP \(status)")
        return AttemptRecord(deliveryID: webhook * 100 + Int64(startedAt), webhookID: webhook, attempt: 1, completion: completion, errorCode: nil,
                             startedAt: startedAt, durationMilliseconds: 1, responseBody: nil)
    }

    @Test("one entry per webhook, by webhook id (two workers lock health rows in the same order), counting failures after the last success")
    func summariesAreInWebhookOrder() {
        let records = [
            Self.record(webhook: 9, at: 12, status: 500), Self.record(webhook: 3, at: 10, status: 200),
            Self.record(webhook: 5, at: 11, status: 410), Self.record(webhook: 9, at: 10, status: 200),
            Self.record(webhook: 7, at: 10, status: 500), Self.record(webhook: 9, at: 13, status: 503),
        ]
        #expect(WebhookBatchHealth.summarize(records) == "["
            + #"{"webhook_id":3,"failures":0,"first_failure":null,"last_success":10.0,"last_attempt":10.0,"gone":false},"#
            + #"{"webhook_id":5,"failures":1,"first_failure":11.0,"last_success":null,"last_attempt":11.0,"gone":true},"#
            + #"{"webhook_id":7,"failures":1,"first_failure":10.0,"last_success":null,"last_attempt":10.0,"gone":false},"#
            + #"{"webhook_id":9,"failures":2,"first_failure":12.0,"last_success":10.0,"last_attempt":13.0,"gone":false}"#
            + "]")
    }

    @Test("an attempt the worker cut short (it stopped mid-request) is neither a failure nor a success of the webhook")
    func interruptedAttemptsDoNotCount() {
        let interrupted = AttemptRecord(
            deliveryID: 1, webhookID: 4, attempt: 1,
            completion: DeliveryStateMachine.Completion(state: .pending, retryIn: .zero, error: "stopped", interrupted: true),
            errorCode: "interrupted", startedAt: 20, durationMilliseconds: 1, responseBody: nil)
        #expect(WebhookBatchHealth.summarize([interrupted]) == "[]")
        #expect(WebhookBatchHealth.summarize([Self.record(webhook: 4, at: 10, status: 500), interrupted])
                == #"[{"webhook_id":4,"failures":1,"first_failure":10.0,"last_success":null,"last_attempt":10.0,"gone":false}]"#)
    }
}
