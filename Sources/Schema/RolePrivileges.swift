/// What each kind of role needs in the `webhooky` schema, checked by `webhooky doctor` and by
/// the worker before it starts.
public enum RolePrivileges {
    /// What `webhooky run` needs (`worker`) and what an admin needs (`admin`) and the role
    /// lacks: purpose, `PRIVILEGE on object`, and for a privilege the worker can run without,
    /// the feature that needs it (``Feature``; `NULL` for the others). The worker needs no
    /// DELETE on history: `webhooky.prune` runs as its owner.
    public static let missingSQL = """
        WITH needed (purpose, kind, object, privilege) AS (VALUES
            ('worker', 'schema', 'webhooky', 'USAGE'),
            ('worker', 'table', 'webhooky.migrations', 'SELECT'), ('worker', 'table', 'webhooky.event_types', 'SELECT'),
            ('worker', 'table', 'webhooky.webhooks', 'SELECT'),
            ('worker', 'column', 'webhooky.webhooks.enabled', 'UPDATE'), ('worker', 'column', 'webhooky.webhooks.disabled_reason', 'UPDATE'),
            ('worker', 'column', 'webhooky.webhooks.disabled_at', 'UPDATE'),
            ('worker', 'table', 'webhooky.events', 'SELECT'), ('worker', 'table', 'webhooky.events', 'UPDATE'),
            ('worker', 'table', 'webhooky.deliveries', 'SELECT'), ('worker', 'table', 'webhooky.deliveries', 'INSERT'),
            ('worker', 'table', 'webhooky.deliveries', 'UPDATE'),
            ('worker', 'table', 'webhooky.attempts', 'SELECT'), ('worker', 'table', 'webhooky.attempts', 'INSERT'),
            ('worker', 'table', 'webhooky.webhook_health', 'SELECT'), ('worker', 'table', 'webhooky.webhook_health', 'INSERT'),
            ('worker', 'table', 'webhooky.webhook_health', 'UPDATE'),
            ('worker', 'table', 'webhooky.workers', 'SELECT'), ('worker', 'table', 'webhooky.workers', 'INSERT'),
            ('worker', 'table', 'webhooky.workers', 'UPDATE'), ('worker', 'table', 'webhooky.workers', 'DELETE'),
            ('worker', 'table', 'webhooky.installation', 'SELECT'),
            ('worker', 'function', 'webhooky.prune(interval, interval, integer)', 'EXECUTE'),
            ('worker', 'function', 'webhooky.refresh_wanted_events()', 'EXECUTE'),
            ('admin', 'schema', 'webhooky', 'USAGE'),
            ('admin', 'table', 'webhooky.webhooks', 'SELECT'), ('admin', 'table', 'webhooky.webhooks', 'INSERT'),
            ('admin', 'table', 'webhooky.webhooks', 'UPDATE'), ('admin', 'table', 'webhooky.webhooks', 'DELETE'),
            ('admin', 'table', 'webhooky.event_types', 'SELECT'), ('admin', 'table', 'webhooky.events', 'SELECT'),
            ('admin', 'table', 'webhooky.deliveries', 'SELECT'), ('admin', 'table', 'webhooky.attempts', 'SELECT'),
            ('admin', 'table', 'webhooky.health', 'SELECT'), ('admin', 'table', 'webhooky.workers', 'SELECT'),
            ('admin', 'function', 'webhooky.send_test(bigint, jsonb, bigint)', 'EXECUTE'),
            ('admin', 'function', 'webhooky.redeliver(bigint)', 'EXECUTE'),
            ('admin', 'function', 'webhooky.redeliver_webhook(bigint, timestamptz, timestamptz, boolean)', 'EXECUTE'),
            ('admin', 'function', 'webhooky.variables(text, integer)', 'EXECUTE')
        )
        SELECT purpose, privilege || ' on ' || object,
               CASE WHEN purpose <> 'worker' THEN NULL
                    WHEN object = 'webhooky.prune(interval, interval, integer)' THEN '\(Feature.pruning.rawValue)'
                    WHEN object LIKE 'webhooky.webhooks.%' THEN '\(Feature.autoDisable.rawValue)'
                    WHEN object = 'webhooky.refresh_wanted_events()' THEN '\(Feature.wantedEvents.rawValue)' END
          FROM needed
         WHERE NOT CASE kind
                   WHEN 'schema' THEN has_schema_privilege(object, privilege)
                   WHEN 'table' THEN has_table_privilege(object, privilege)
                   WHEN 'column' THEN has_column_privilege(regexp_replace(object, '\\.[^.]*$', ''), regexp_replace(object, '^.*\\.', ''), privilege)
                   ELSE has_function_privilege(object, privilege)
               END
        """

    /// Whether the current role is a tenant's (a member of `webhooky_tenant`) and not an
    /// admin's: `t` or `f`.
    public static let tenantOnlySQL = """
        SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_tenant') AND pg_has_role('webhooky_tenant', 'MEMBER')
           AND NOT (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'webhooky_admin') AND pg_has_role('webhooky_admin', 'MEMBER'))
        """

    /// What the worker does with a privilege it can run without.
    public enum Feature: String, Sendable {
        /// Deletes old history (`webhooky.prune`), unless told `--no-prune`.
        case pruning = "pruning"
        /// Disables failing webhooks, unless told `--no-auto-disable`.
        case autoDisable = "auto-disable"
        /// Refreshes `webhooky.wanted_events`; without it, it says so once and goes on.
        case wantedEvents = "wanted-events"
    }
}
