-- Webhooky schema, migration 0054: every failed attempt carries a machine-readable error code.
--
-- webhooky.attempts had the HTTP status (NULL without an answer) and a human message in error,
-- so "which attempts timed out in the last hour" could only be asked of the message's wording,
-- and a worker that starts told an endpoint's silence from an unsendable request (a refused
-- redirect, too many redirects, a refused address) by nothing: any attempt without a status
-- started its endpoint at one request in flight. The new column error_code holds the HTTP
-- client's classification of the failure or the worker's own (see its comment); NULL for an
-- attempt answered with an HTTP status, 2xx or not. The worker writes it with every attempt.
--
-- Rows from before this migration keep NULL, except the two kinds that their error text tells
-- exactly, because only the worker writes it: the rows the lease reap writes for a worker that
-- died ('lease expired: ...', no status) become lease_expired, and the attempts a worker's stop
-- cut short ('no answer: the worker stopped ...', no status) become interrupted. This updates
-- those rows only (one UPDATE: one pass over the table).
--
-- Apply with `webhooky migrate`, or: psql -X -v ON_ERROR_STOP=1 -f sql/0054_attempt_error_codes.sql

BEGIN;
DO $$ BEGIN PERFORM webhooky.begin_migration(54, 'attempt_error_codes'); END $$;

ALTER TABLE webhooky.attempts ADD COLUMN error_code text;

COMMENT ON COLUMN webhooky.attempts.error_code IS
    'Why the attempt failed, as a code; NULL when the endpoint answered with an HTTP status (2xx or not: see status). '
    'No answer: timeout (connect or total timeout), dns_failure (the host name did not resolve), connect_failure (connection refused or unreachable), '
    'tls_failure (TLS handshake or certificate), connection_broken (reset, closed or empty reply), other (any other transport failure). '
    'Answered, but not followed: redirect_refused (a Location that cannot be parsed, or to another scheme than http/https, or from https to http), '
    'too_many_redirects (more redirects than the webhook may follow). Not sent, the delivery ends dead: invalid_url (a malformed rendered URL), address_not_allowed (a private or internal address), '
    'invalid_request (the request could not be built: a template that does not render, a header value with CR or LF, a request over its limits). '
    'The worker''s own: interrupted (its stop cut the request short; it may have arrived), lease_expired (written by the lease reap: the worker that claimed it '
    'stopped or lost the database before recording the outcome). NULL also for failed attempts recorded before migration 0054, '
    'except lease_expired and interrupted, which were set from their error text.';

UPDATE webhooky.attempts
   SET error_code = CASE WHEN error LIKE 'lease expired: %' THEN 'lease_expired' ELSE 'interrupted' END
 WHERE status IS NULL AND (error LIKE 'lease expired: %' OR error LIKE 'no answer: the worker stopped%');

COMMIT;
