/// One numbered SQL migration from `sql/`, embedded in the binary.
public struct Migration: Sendable, Hashable {
    /// The number in the file name, e.g. 1 for `0001_core.sql`.
    public let version: Int
    /// The rest of the file name, e.g. `core`.
    public let name: String
    /// The file's SQL, which runs in its own transaction (it holds `BEGIN` and `COMMIT`).
    public let sql: String

    /// The file name, e.g. `0001_core.sql`.
    public var fileName: String {
        let number = String(version)
        return String(repeating: "0", count: max(0, 4 - number.count)) + number + "_" + name + ".sql"
    }
}

/// The migrations this binary knows, in order, and the reference domain.
public enum Migrations {
    /// Every migration, oldest first. A new file in `sql/` is added here too (a test checks
    /// that this list and the folder agree).
    public static let all: [Migration] = [
        Migration(version: 1, name: "core", sql: String(decoding: PackageResources._001_core_sql, as: UTF8.self)),
        Migration(version: 2, name: "fair_claims_and_health", sql: String(decoding: PackageResources._002_fair_claims_and_health_sql, as: UTF8.self)),
        Migration(version: 3, name: "worker_fan_out", sql: String(decoding: PackageResources._003_worker_fan_out_sql, as: UTF8.self)),
        Migration(version: 4, name: "admin", sql: String(decoding: PackageResources._004_admin_sql, as: UTF8.self)),
        Migration(version: 5, name: "cheaper_checks", sql: String(decoding: PackageResources._005_cheaper_checks_sql, as: UTF8.self)),
        Migration(version: 6, name: "security", sql: String(decoding: PackageResources._006_security_sql, as: UTF8.self)),
        Migration(version: 7, name: "claim_cursor", sql: String(decoding: PackageResources._007_claim_cursor_sql, as: UTF8.self)),
        Migration(version: 8, name: "wanted_events", sql: String(decoding: PackageResources._008_wanted_events_sql, as: UTF8.self)),
        Migration(version: 9, name: "webhook_edits", sql: String(decoding: PackageResources._009_webhook_edits_sql, as: UTF8.self)),
        Migration(version: 10, name: "url_checks_and_tenant_commands", sql: String(decoding: PackageResources._010_url_checks_and_tenant_commands_sql, as: UTF8.self)),
        Migration(version: 11, name: "tenant_safety", sql: String(decoding: PackageResources._011_tenant_safety_sql, as: UTF8.self)),
        Migration(version: 12, name: "friendlier_mistakes", sql: String(decoding: PackageResources._012_friendlier_mistakes_sql, as: UTF8.self)),
        Migration(version: 13, name: "account_locks", sql: String(decoding: PackageResources._013_account_locks_sql, as: UTF8.self)),
        Migration(version: 14, name: "role_grants", sql: String(decoding: PackageResources._014_role_grants_sql, as: UTF8.self)),
        Migration(version: 15, name: "bounded_prune", sql: String(decoding: PackageResources._015_bounded_prune_sql, as: UTF8.self)),
        Migration(version: 16, name: "redirect_comments", sql: String(decoding: PackageResources._016_redirect_comments_sql, as: UTF8.self)),
        Migration(version: 17, name: "notify_kinds", sql: String(decoding: PackageResources._017_notify_kinds_sql, as: UTF8.self)),
        Migration(version: 18, name: "interrupted_attempts", sql: String(decoding: PackageResources._018_interrupted_attempts_sql, as: UTF8.self)),
        Migration(version: 19, name: "trigger_function_privileges", sql: String(decoding: PackageResources._019_trigger_function_privileges_sql, as: UTF8.self)),
        Migration(version: 20, name: "redeliver_deleted_webhook", sql: String(decoding: PackageResources._020_redeliver_deleted_webhook_sql, as: UTF8.self)),
        Migration(version: 21, name: "tenant_account_messages", sql: String(decoding: PackageResources._021_tenant_account_messages_sql, as: UTF8.self)),
        Migration(version: 22, name: "redirects_keep_the_post", sql: String(decoding: PackageResources._022_redirects_keep_the_post_sql, as: UTF8.self)),
        Migration(version: 23, name: "prune_arguments", sql: String(decoding: PackageResources._023_prune_arguments_sql, as: UTF8.self)),
        Migration(version: 24, name: "installation_message_ids", sql: String(decoding: PackageResources._024_installation_message_ids_sql, as: UTF8.self)),
        Migration(version: 25, name: "history_stays_with_its_account", sql: String(decoding: PackageResources._025_history_stays_with_its_account_sql, as: UTF8.self)),
        Migration(version: 26, name: "settings_checks", sql: String(decoding: PackageResources._026_settings_checks_sql, as: UTF8.self)),
        Migration(version: 27, name: "rotate_secret_overlap", sql: String(decoding: PackageResources._027_rotate_secret_overlap_sql, as: UTF8.self)),
        Migration(version: 28, name: "variables_without_tests", sql: String(decoding: PackageResources._028_variables_without_tests_sql, as: UTF8.self)),
        Migration(version: 29, name: "redeliver_webhook_arguments", sql: String(decoding: PackageResources._029_redeliver_webhook_arguments_sql, as: UTF8.self)),
        Migration(version: 30, name: "webhook_account_moves", sql: String(decoding: PackageResources._030_webhook_account_moves_sql, as: UTF8.self)),
        Migration(version: 31, name: "fixed_search_paths", sql: String(decoding: PackageResources._031_fixed_search_paths_sql, as: UTF8.self)),
        Migration(version: 32, name: "health_timings", sql: String(decoding: PackageResources._032_health_timings_sql, as: UTF8.self)),
        Migration(version: 33, name: "redeliveries_stay_in_their_account", sql: String(decoding: PackageResources._033_redeliveries_stay_in_their_account_sql, as: UTF8.self)),
        Migration(version: 34, name: "url_host_checks", sql: String(decoding: PackageResources._034_url_host_checks_sql, as: UTF8.self)),
        Migration(version: 35, name: "trigger_function_comments", sql: String(decoding: PackageResources._035_trigger_function_comments_sql, as: UTF8.self)),
        Migration(version: 36, name: "refusals_without_secrets", sql: String(decoding: PackageResources._036_refusals_without_secrets_sql, as: UTF8.self)),
        Migration(version: 37, name: "redeliveries_wait_for_moves", sql: String(decoding: PackageResources._037_redeliveries_wait_for_moves_sql, as: UTF8.self)),
        Migration(version: 38, name: "prune_old_events_last", sql: String(decoding: PackageResources._038_prune_old_events_last_sql, as: UTF8.self)),
        Migration(version: 39, name: "next_attempt_comment", sql: String(decoding: PackageResources._039_next_attempt_comment_sql, as: UTF8.self)),
        Migration(version: 40, name: "redelivered_pending_since", sql: String(decoding: PackageResources._040_redelivered_pending_since_sql, as: UTF8.self)),
        Migration(version: 41, name: "body_errors_without_text", sql: String(decoding: PackageResources._041_body_errors_without_text_sql, as: UTF8.self)),
        Migration(version: 42, name: "event_pace_outlives_pruning", sql: String(decoding: PackageResources._042_event_pace_outlives_pruning_sql, as: UTF8.self)),
        Migration(version: 43, name: "bulk_redelivery_skips_tests", sql: String(decoding: PackageResources._043_bulk_redelivery_skips_tests_sql, as: UTF8.self)),
        Migration(version: 44, name: "body_errors_exact_place", sql: String(decoding: PackageResources._044_body_errors_exact_place_sql, as: UTF8.self)),
        Migration(version: 45, name: "event_pace_wanted_since", sql: String(decoding: PackageResources._045_event_pace_wanted_since_sql, as: UTF8.self)),
        Migration(version: 46, name: "webhook_changes_reach_the_line", sql: String(decoding: PackageResources._046_webhook_changes_reach_the_line_sql, as: UTF8.self)),
        Migration(version: 47, name: "workers_read_event_pace", sql: String(decoding: PackageResources._047_workers_read_event_pace_sql, as: UTF8.self)),
        Migration(version: 48, name: "wanted_since_holds_no_shared_lock", sql: String(decoding: PackageResources._048_wanted_since_holds_no_shared_lock_sql, as: UTF8.self)),
        Migration(version: 49, name: "webhook_change_notice_without_id", sql: String(decoding: PackageResources._049_webhook_change_notice_without_id_sql, as: UTF8.self)),
        Migration(version: 50, name: "admin_arguments_checked", sql: String(decoding: PackageResources._050_admin_arguments_checked_sql, as: UTF8.self)),
        Migration(version: 51, name: "enabling_sends_retries_at_once", sql: String(decoding: PackageResources._051_enabling_sends_retries_at_once_sql, as: UTF8.self)),
        Migration(version: 52, name: "redeliver_says_when_pending_goes_out", sql: String(decoding: PackageResources._052_redeliver_says_when_pending_goes_out_sql, as: UTF8.self)),
        Migration(version: 53, name: "worker_doctor_and_clearer_refusals", sql: String(decoding: PackageResources._053_worker_doctor_and_clearer_refusals_sql, as: UTF8.self)),
        Migration(version: 54, name: "attempt_error_codes", sql: String(decoding: PackageResources._054_attempt_error_codes_sql, as: UTF8.self)),
        Migration(version: 55, name: "unclosed_placeholder_hint", sql: String(decoding: PackageResources._055_unclosed_placeholder_hint_sql, as: UTF8.self)),
        Migration(version: 56, name: "delivery_error_codes", sql: String(decoding: PackageResources._056_delivery_error_codes_sql, as: UTF8.self)),
        Migration(version: 57, name: "new_webhook_refusals_name_no_id", sql: String(decoding: PackageResources._057_new_webhook_refusals_name_no_id_sql, as: UTF8.self)),
        Migration(version: 58, name: "checks_on_changed_columns", sql: String(decoding: PackageResources._058_checks_on_changed_columns_sql, as: UTF8.self)),
        Migration(version: 59, name: "rotate_secret_overlap_bound", sql: String(decoding: PackageResources._059_rotate_secret_overlap_bound_sql, as: UTF8.self)),
        Migration(version: 60, name: "emit_names_known_events", sql: String(decoding: PackageResources._060_emit_names_known_events_sql, as: UTF8.self)),
        Migration(version: 61, name: "replaced_secret_and_limit_hints", sql: String(decoding: PackageResources._061_replaced_secret_and_limit_hints_sql, as: UTF8.self)),
        Migration(version: 62, name: "test_header_reserved", sql: String(decoding: PackageResources._062_test_header_reserved_sql, as: UTF8.self)),
        Migration(version: 63, name: "oldest_counts_stranded_claims", sql: String(decoding: PackageResources._063_oldest_counts_stranded_claims_sql, as: UTF8.self)),
        Migration(version: 64, name: "send_test_waits_for_a_move", sql: String(decoding: PackageResources._064_send_test_waits_for_a_move_sql, as: UTF8.self)),
        Migration(version: 65, name: "no_health_for_a_deleted_webhook", sql: String(decoding: PackageResources._065_no_health_for_a_deleted_webhook_sql, as: UTF8.self)),
        Migration(version: 66, name: "wanted_since_at_commit", sql: String(decoding: PackageResources._066_wanted_since_at_commit_sql, as: UTF8.self)),
        Migration(version: 67, name: "wanted_since_within_one_transaction", sql: String(decoding: PackageResources._067_wanted_since_within_one_transaction_sql, as: UTF8.self)),
        Migration(version: 68, name: "wanted_since_of_many_at_once", sql: String(decoding: PackageResources._068_wanted_since_of_many_at_once_sql, as: UTF8.self)),
        Migration(version: 69, name: "no_note_transaction", sql: String(decoding: PackageResources._069_no_note_transaction_sql, as: UTF8.self)),
    ]

    /// The schema version this binary works with: the highest migration it knows.
    public static var latestVersion: Int { all.last?.version ?? 0 }

    /// `sql/examples/ellity.sql`: the Ellity-style reference domain with its two triggers.
    public static let referenceDomain = String(decoding: PackageResources.ellity_sql, as: UTF8.self)
}
