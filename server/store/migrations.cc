#include "server/store/migrations.h"

#include <cstdio>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace rio::store {
namespace {

// Arbitrary, fixed: "rio" in ASCII, namespacing Rio's advisory lock.
constexpr const char* kMigrationLockKey = "7498095";

constexpr const char* kCatalogSchema = R"sql(
CREATE TABLE projects (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug        text NOT NULL UNIQUE,
  name        text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  update_time timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE senders (
  project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  name        text NOT NULL,
  token_hash  bytea NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, name)
);

CREATE TABLE handlers (
  id                          uuid PRIMARY KEY,
  project_id                  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  event                       text NOT NULL,
  url                         text NOT NULL,
  method                      text NOT NULL CHECK (method IN ('POST', 'PUT', 'GET')),
  content_type                text NOT NULL CHECK (content_type IN ('FORM', 'JSON')),
  headers                     jsonb NOT NULL DEFAULT '{}',
  timeout_ms                  integer NOT NULL,
  enabled                     boolean NOT NULL DEFAULT true,
  disabled_reason             text NOT NULL DEFAULT '',
  secret                      text NOT NULL,
  previous_secret             text,
  previous_secret_expire_time timestamptz,
  create_time                 timestamptz NOT NULL DEFAULT now(),
  update_time                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX handlers_by_event ON handlers (project_id, event);

-- Every instance keeps projects, sender hashes and handlers in memory and
-- reloads them when told.
CREATE FUNCTION rio_notify_catalog() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('rio_catalog', TG_TABLE_NAME);
  RETURN NULL;
END
$$;
CREATE TRIGGER projects_changed AFTER INSERT OR UPDATE OR DELETE ON projects
  FOR EACH STATEMENT EXECUTE FUNCTION rio_notify_catalog();
CREATE TRIGGER senders_changed AFTER INSERT OR UPDATE OR DELETE ON senders
  FOR EACH STATEMENT EXECUTE FUNCTION rio_notify_catalog();
CREATE TRIGGER handlers_changed AFTER INSERT OR UPDATE OR DELETE ON handlers
  FOR EACH STATEMENT EXECUTE FUNCTION rio_notify_catalog();
)sql";

// Messages, their deliveries (one per handler) and every attempt.
//
// A delivery is PENDING until it SUCCEEDED, FAILED (attempts exhausted or the
// receiver answered 410) or was CANCELLED. A pending delivery is leased by
// the instance that will send it (lease_owner = its instance id); a lease is
// valid while that instance's row in rio_instances has a fresh heartbeat, so
// the deliveries of a crashed instance are claimed by others (or by itself
// after a restart) once its heartbeat goes stale.
constexpr const char* kDeliverySchema = R"sql(
CREATE TABLE rio_instances (
  id             uuid PRIMARY KEY,
  heartbeat_time timestamptz NOT NULL DEFAULT now(),
  start_time     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE messages (
  id              uuid PRIMARY KEY,
  project_id      bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  event           text NOT NULL,
  payload         text NOT NULL,
  idempotency_key text,
  sender          text NOT NULL,
  create_time     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX messages_idempotency ON messages (project_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_by_time ON messages (project_id, create_time DESC);

CREATE TABLE deliveries (
  id                uuid PRIMARY KEY,
  message_id        uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
  handler_id        uuid NOT NULL REFERENCES handlers (id) ON DELETE CASCADE,
  status            text NOT NULL DEFAULT 'PENDING'
                    CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
  attempts          integer NOT NULL DEFAULT 0,
  next_attempt_time timestamptz NOT NULL DEFAULT now(),
  lease_owner       uuid,
  last_status_code  integer,
  last_error_class  text,
  create_time       timestamptz NOT NULL DEFAULT now(),
  update_time       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_time) WHERE status = 'PENDING';
CREATE INDEX deliveries_by_message ON deliveries (message_id);
CREATE INDEX deliveries_by_handler ON deliveries (handler_id, create_time DESC);

CREATE TABLE attempts (
  delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
  number           integer NOT NULL,
  start_time       timestamptz NOT NULL,
  duration_us      bigint NOT NULL,
  dns_us           bigint NOT NULL DEFAULT 0,
  connect_us       bigint NOT NULL DEFAULT 0,
  tls_us           bigint NOT NULL DEFAULT 0,
  first_byte_us    bigint NOT NULL DEFAULT 0,
  total_us         bigint NOT NULL DEFAULT 0,
  status_code      integer NOT NULL DEFAULT 0,
  request_headers  text NOT NULL DEFAULT '',
  response_headers text NOT NULL DEFAULT '',
  response_body    bytea NOT NULL DEFAULT '',
  error_class      text NOT NULL DEFAULT '',
  error_message    text NOT NULL DEFAULT '',
  manual           boolean NOT NULL DEFAULT false,
  PRIMARY KEY (delivery_id, number)
);
)sql";

// Monitoring and re-triggering.
//
// deliveries.manual marks a delivery whose next attempt was asked for by an
// operator (Redeliver, RecoverFailed); recovery_id, the recovery job that
// re-queued it. deliveries_unsucceeded serves the "latest failing calls" and
// recovery scans; a delivery leaves it when it succeeds (most do), so it
// stays small.
//
// handler_health counts each handler's failed attempts since its last
// success (the health policy disables a handler after too many). It is kept
// apart from handlers so that counting does not fire the catalog trigger.
//
// A recovery is walked oldest first in batches, each batch one transaction
// that re-queues deliveries and advances the job's cursor, so a job survives
// restarts and any instance may run its next batch.
constexpr const char* kMonitoringSchema = R"sql(
ALTER TABLE deliveries ADD COLUMN manual boolean NOT NULL DEFAULT false;
ALTER TABLE deliveries ADD COLUMN recovery_id uuid;
CREATE INDEX deliveries_unsucceeded ON deliveries (handler_id, create_time DESC)
  WHERE status <> 'SUCCEEDED';
CREATE INDEX deliveries_by_recovery ON deliveries (recovery_id)
  WHERE recovery_id IS NOT NULL;

CREATE TABLE handler_health (
  handler_id           uuid PRIMARY KEY REFERENCES handlers (id) ON DELETE CASCADE,
  consecutive_failures bigint NOT NULL DEFAULT 0,
  failing_since        timestamptz,
  last_success_time    timestamptz
);

CREATE TABLE recoveries (
  id              uuid PRIMARY KEY,
  project_id      bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  handler_id      uuid REFERENCES handlers (id) ON DELETE CASCADE,
  event           text,
  since           timestamptz,
  until           timestamptz NOT NULL,
  rate_per_second integer NOT NULL,
  state           text NOT NULL DEFAULT 'RUNNING'
                  CHECK (state IN ('RUNNING', 'DONE', 'CANCELLED')),
  matched         bigint NOT NULL,
  requeued        bigint NOT NULL DEFAULT 0,
  cursor_time     timestamptz,
  cursor_id       uuid,
  next_batch_time timestamptz NOT NULL DEFAULT now(),
  create_time     timestamptz NOT NULL DEFAULT now(),
  finish_time     timestamptz
);
CREATE INDEX recoveries_running ON recoveries (next_batch_time)
  WHERE state = 'RUNNING';
CREATE INDEX recoveries_by_project ON recoveries (project_id, create_time DESC);
)sql";

// The hot path without foreign-key checks.
//
// Every emitted message and delivery, and every attempt, paid for foreign-key
// checks: a row lock on the referenced project, message, handler or delivery
// per inserted row, each a lookup, a locked tuple and WAL of its own, about a
// quarter of PostgreSQL's time per delivery. Rio writes these rows itself
// from rows it has just read or written, so the checks are dropped and what
// ON DELETE CASCADE did is done by triggers on the rarely deleted parents:
// deleting a handler deletes its deliveries and their attempts, deleting a
// project its messages with theirs (its handlers go by their own cascade).
// Retention deletes messages, deliveries and attempts itself.
//
// A delivery written at the same moment its handler (or project) is deleted
// can outlive it; nothing dispatches it again (the scheduler finds no handler
// and cancels it) and retention deletes it with its message.
constexpr const char* kHotPathSchema = R"sql(
ALTER TABLE messages DROP CONSTRAINT messages_project_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_message_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_handler_id_fkey;
ALTER TABLE attempts DROP CONSTRAINT attempts_delivery_id_fkey;

CREATE FUNCTION rio_delete_handler_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM attempts a USING deliveries d
    WHERE d.handler_id = OLD.id AND a.delivery_id = d.id;
  DELETE FROM deliveries WHERE handler_id = OLD.id;
  RETURN NULL;
END
$$;
CREATE TRIGGER handlers_deleted AFTER DELETE ON handlers
  FOR EACH ROW EXECUTE FUNCTION rio_delete_handler_history();

CREATE FUNCTION rio_delete_project_messages() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM attempts a USING deliveries d, messages m
    WHERE m.project_id = OLD.id AND d.message_id = m.id AND a.delivery_id = d.id;
  DELETE FROM deliveries d USING messages m
    WHERE m.project_id = OLD.id AND d.message_id = m.id;
  DELETE FROM messages WHERE project_id = OLD.id;
  RETURN NULL;
END
$$;
CREATE TRIGGER projects_deleted AFTER DELETE ON projects
  FOR EACH ROW EXECUTE FUNCTION rio_delete_project_messages();
)sql";

// Secrets at rest. A handler's signing secrets and header values are sealed
// (AES-256-GCM, server/util/secret_box.h) when the server has a key;
// secrets_sealed says whether a row's values are sealed or plaintext. This
// migration cannot seal the rows already there (SQL has no key): they stay
// plaintext (false) until rio-server seals them at start-up, right after
// the migrations (store/handler_secrets.h, SealStoredSecrets).
constexpr const char* kSecretsSchema = R"sql(
ALTER TABLE handlers ADD COLUMN secrets_sealed boolean NOT NULL DEFAULT false;
)sql";

// Scoped access tokens for the admin services, kept (as hashes) in every
// instance's catalog so that a call is authorized without a query.
constexpr const char* kAccessTokensSchema = R"sql(
CREATE TABLE access_tokens (
  name        text PRIMARY KEY,
  scope       text NOT NULL CHECK (scope IN ('ADMIN', 'PROJECT_ADMIN', 'READ_ONLY')),
  project_id  bigint REFERENCES projects (id) ON DELETE CASCADE,
  token_hash  bytea NOT NULL UNIQUE,
  create_time timestamptz NOT NULL DEFAULT now(),
  expire_time timestamptz,
  CHECK ((scope = 'ADMIN' AND project_id IS NULL) OR
         (scope = 'PROJECT_ADMIN' AND project_id IS NOT NULL) OR
         scope = 'READ_ONLY')
);
CREATE TRIGGER access_tokens_changed AFTER INSERT OR UPDATE OR DELETE ON access_tokens
  FOR EACH STATEMENT EXECUTE FUNCTION rio_notify_catalog();
)sql";

// A client certificate per handler, for receivers that require mutual TLS;
// the key is sealed like the handler's other secrets (handler_secrets.h).
constexpr const char* kClientCertificateSchema = R"sql(
ALTER TABLE handlers ADD COLUMN client_certificate text NOT NULL DEFAULT '';
ALTER TABLE handlers ADD COLUMN client_key text NOT NULL DEFAULT '';
)sql";

// Per-handler counters by minute and by hour, so that statistics over any
// window up to 90 days read a few hundred rows instead of the deliveries
// and attempts of the window (store/stats_store.h).
//
// delivery_counts: the deliveries created in a span, by their status now.
// The emit and the outcome writer, which insert deliveries and move them out
// of PENDING, count in the statement that writes them (a statement-level
// trigger with transition tables cost PostgreSQL about 12 µs per delivery);
// a row trigger counts the rare other changes (redelivery, recovery).
// attempt_counts: the attempts started in a span, the failed ones, and a
// histogram of the durations of those that got a response (bucket k counts
// durations d with b[k] <= d < b[k+1], b = rio_latency_bounds_us() indexed
// from 1, bucket 0 those below b[1]: width_bucket's numbering); the outcome
// writer adds to it in the transaction that writes the attempts.
//
// A row is (handler, span, start, shard): the shard is the writing
// connection's process id, so that no two connections ever write the same
// row: the ingest and outcome writers of one or several instances never wait
// for each other's row lock (with one handler, they would otherwise take
// turns at every commit) and cannot deadlock. Readers sum over the shards, a
// few per span (rio-server's connections are long-lived).
//
// Deleting deliveries (retention, a handler's deletion) does not subtract:
// the counters outlive the history, and retention drops minute rows after
// 7 hours and hour rows after 90 days. A handler's deletion deletes its rows.
constexpr const char* kStatsSchema = R"sql(
CREATE TABLE delivery_counts (
  handler_id uuid NOT NULL,
  span       integer NOT NULL CHECK (span IN (60, 3600)),
  start_time timestamptz NOT NULL,
  shard      integer NOT NULL,
  pending    bigint NOT NULL DEFAULT 0,
  succeeded  bigint NOT NULL DEFAULT 0,
  failed     bigint NOT NULL DEFAULT 0,
  cancelled  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (handler_id, span, start_time, shard)
);

CREATE TABLE attempt_counts (
  handler_id uuid NOT NULL,
  span       integer NOT NULL CHECK (span IN (60, 3600)),
  start_time timestamptz NOT NULL,
  shard      integer NOT NULL,
  attempts   bigint NOT NULL DEFAULT 0,
  failed     bigint NOT NULL DEFAULT 0,
  latency    bigint[] NOT NULL,
  PRIMARY KEY (handler_id, span, start_time, shard)
);

-- The start of the span (whole seconds since the epoch) that holds t.
CREATE FUNCTION rio_span_start(t timestamptz, span integer) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT to_timestamp(floor(extract(epoch FROM t) / span) * span) $$;

-- Element-wise sum; the shorter array counts as zeros. (PL/pgSQL, so that
-- its plan is kept for the session.)
CREATE FUNCTION rio_add_counts(a bigint[], b bigint[]) RETURNS bigint[]
  LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN ARRAY(SELECT coalesce(x, 0) + coalesce(y, 0)
               FROM unnest(a, b) WITH ORDINALITY AS t(x, y, i) ORDER BY i);
END
$$;

-- The latency histogram's bucket bounds in microseconds; equal to
-- kLatencyBoundsUs in store/stats_store.cc.
CREATE FUNCTION rio_latency_bounds_us() RETURNS bigint[]
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT
    '{100,150,200,250,300,400,500,600,800,1000,1250,1500,2000,2500,3000,4000,5000,6000,8000,10000,12500,15000,20000,25000,30000,40000,50000,60000,80000,100000,125000,150000,200000,250000,300000,400000,500000,600000,800000,1000000,1250000,1500000,2000000,2500000,3000000,4000000,5000000,6000000,8000000,10000000,12500000,15000000,20000000,25000000,30000000,40000000,50000000,60000000}'::bigint[] $$;

-- Adds deliveries counted by (handler, creation time) to the counters of
-- their minutes and hours; returns how many counter rows it wrote to. Its
-- callers group a statement's rows by creation time first: an emit's
-- deliveries share one (its transaction's), so the span arithmetic runs on a
-- few groups, not on every row.
CREATE FUNCTION rio_add_delivery_counts(
    in_shard integer, in_handlers uuid[], in_times timestamptz[],
    in_pending bigint[], in_succeeded bigint[], in_failed bigint[],
    in_cancelled bigint[])
  RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  written bigint;
BEGIN
  -- PL/pgSQL keeps the statement's plan for the session; an SQL function's
  -- body would be parsed and planned again by every statement calling it.
  WITH by_minute AS (
    SELECT h, to_timestamp(floor(extract(epoch FROM t) / 60) * 60) AS st,
           sum(p) AS p, sum(s) AS s, sum(f) AS f, sum(c) AS c
    FROM unnest(in_handlers, in_times, in_pending, in_succeeded, in_failed,
                in_cancelled) AS u(h, t, p, s, f, c)
    GROUP BY 1, 2),
  spans AS (
    SELECT h, 60 AS span, st, p, s, f, c FROM by_minute
    UNION ALL
    SELECT h, 3600, to_timestamp(floor(extract(epoch FROM st) / 3600) * 3600),
           sum(p), sum(s), sum(f), sum(c)
    FROM by_minute GROUP BY 1, 3),
  upserted AS (
    INSERT INTO delivery_counts AS dc
      (handler_id, span, start_time, shard, pending, succeeded, failed, cancelled)
    SELECT h, span, st, in_shard, p, s, f, c FROM spans
    WHERE p <> 0 OR s <> 0 OR f <> 0 OR c <> 0
    ORDER BY 1, 2, 3
    ON CONFLICT (handler_id, span, start_time, shard) DO UPDATE SET
      pending = dc.pending + excluded.pending,
      succeeded = dc.succeeded + excluded.succeeded,
      failed = dc.failed + excluded.failed,
      cancelled = dc.cancelled + excluded.cancelled
    RETURNING 1)
  SELECT count(*) INTO written FROM upserted;
  RETURN written;
END
$$;

-- The statements that insert deliveries (the emit) and move them out of
-- PENDING (the outcome writer) count what they wrote themselves, through
-- store::CountDeliveriesSql; this trigger counts every other change of
-- status (an operator's redelivery, a recovery), which is rare.
CREATE FUNCTION rio_count_status_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM rio_add_delivery_counts(pg_backend_pid(),
    ARRAY[NEW.handler_id], ARRAY[NEW.create_time],
    ARRAY[(NEW.status = 'PENDING')::int - (OLD.status = 'PENDING')::int]::bigint[],
    ARRAY[(NEW.status = 'SUCCEEDED')::int - (OLD.status = 'SUCCEEDED')::int]::bigint[],
    ARRAY[(NEW.status = 'FAILED')::int - (OLD.status = 'FAILED')::int]::bigint[],
    ARRAY[(NEW.status = 'CANCELLED')::int - (OLD.status = 'CANCELLED')::int]::bigint[]);
  RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_status_counted AFTER UPDATE OF status ON deliveries
  FOR EACH ROW WHEN (OLD.status <> 'PENDING' AND OLD.status <> NEW.status)
  EXECUTE FUNCTION rio_count_status_change();

CREATE OR REPLACE FUNCTION rio_delete_handler_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM attempts a USING deliveries d
    WHERE d.handler_id = OLD.id AND a.delivery_id = d.id;
  DELETE FROM deliveries WHERE handler_id = OLD.id;
  DELETE FROM delivery_counts WHERE handler_id = OLD.id;
  DELETE FROM attempt_counts WHERE handler_id = OLD.id;
  RETURN NULL;
END
$$;

-- Counts deliveries and attempts written without counting (the history
-- there before this migration, or rows filled in by hand): hour rows for 90
-- days, minute rows for 7 hours. Adds to what is counted already.
CREATE FUNCTION rio_count_history() RETURNS void LANGUAGE sql AS $$
INSERT INTO delivery_counts
  (handler_id, span, start_time, shard, pending, succeeded, failed, cancelled)
SELECT d.handler_id, s.span, rio_span_start(d.create_time, s.span), 0,
       count(*) FILTER (WHERE d.status = 'PENDING'),
       count(*) FILTER (WHERE d.status = 'SUCCEEDED'),
       count(*) FILTER (WHERE d.status = 'FAILED'),
       count(*) FILTER (WHERE d.status = 'CANCELLED')
FROM deliveries d CROSS JOIN (VALUES (60), (3600)) AS s(span)
WHERE d.create_time > now() - CASE s.span WHEN 60 THEN interval '7 hours'
                                          ELSE interval '90 days' END
  AND EXISTS (SELECT 1 FROM handlers h WHERE h.id = d.handler_id)
GROUP BY 1, 2, 3
ON CONFLICT (handler_id, span, start_time, shard) DO UPDATE SET
  pending = delivery_counts.pending + excluded.pending,
  succeeded = delivery_counts.succeeded + excluded.succeeded,
  failed = delivery_counts.failed + excluded.failed,
  cancelled = delivery_counts.cancelled + excluded.cancelled;

WITH a AS (
  SELECT d.handler_id AS h, s.span, rio_span_start(a.start_time, s.span) AS st,
         a.error_class <> '' AS failed,
         CASE WHEN a.status_code > 0
              THEN width_bucket(a.duration_us, rio_latency_bounds_us()) END AS b
  FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
  CROSS JOIN (VALUES (60), (3600)) AS s(span)
  WHERE a.start_time > now() - CASE s.span WHEN 60 THEN interval '7 hours'
                                           ELSE interval '90 days' END
    AND EXISTS (SELECT 1 FROM handlers h WHERE h.id = d.handler_id)),
by_bucket AS (
  SELECT h, span, st, b, count(*) AS n FROM a WHERE b IS NOT NULL
  GROUP BY 1, 2, 3, 4),
totals AS (
  SELECT h, span, st, count(*) AS n, count(*) FILTER (WHERE failed) AS f
  FROM a GROUP BY 1, 2, 3),
dense AS (
  SELECT t.h, t.span, t.st, array_agg(coalesce(k.n, 0) ORDER BY i) AS latency
  FROM totals t
  CROSS JOIN generate_series(0, cardinality(rio_latency_bounds_us())) AS i
  LEFT JOIN by_bucket k ON k.h = t.h AND k.span = t.span AND k.st = t.st
                       AND k.b = i
  GROUP BY 1, 2, 3)
INSERT INTO attempt_counts AS c
  (handler_id, span, start_time, shard, attempts, failed, latency)
SELECT t.h, t.span, t.st, 0, t.n, t.f, d.latency
FROM totals t JOIN dense d USING (h, span, st)
ON CONFLICT (handler_id, span, start_time, shard) DO UPDATE SET
  attempts = c.attempts + excluded.attempts,
  failed = c.failed + excluded.failed,
  latency = rio_add_counts(c.latency, excluded.latency);
$$;
SELECT rio_count_history();
)sql";

// History partitioned by time.
//
// messages, deliveries and attempts are partitioned by range of their ids
// (attempts by their delivery's): ids are version-7 UUIDs, which begin with
// the millisecond they were made, and a delivery's id carries its message's
// millisecond (ingest/ingest_writer.cc), so one range of time holds a
// message, its deliveries and their attempts, and lookups by id touch one
// partition. rio_history_partitions lists the ranges; each is three tables,
// messages_<suffix>, deliveries_<suffix> and attempts_<suffix>.
// rio-server creates ranges ahead of time with rio_create_partitions
// (store/partitions.h) and retention drops whole ranges, never rows.
//
// The idempotency keys move to their own table: a unique index on a
// partitioned table must contain the partition key, and a key is unique in
// its project across all time. messages.idempotency_key stays, for reading.
//
// The tables as they were become one range, "legacy", kept whole until
// retention drops it: attached as the range of everything before this
// migration when all its ids are time-ordered, else (rows written before
// ids were time-ordered) as the DEFAULT partition, which holds every row no
// range does. Empty, they are dropped. Their indexes are adopted by the new
// tables' indexes of the same definition, not built again.
constexpr const char* kPartitionSchema = R"sql(
CREATE TABLE idempotency_keys (
  project_id  bigint NOT NULL,
  key         text NOT NULL,
  message_id  uuid NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, key)
);
CREATE INDEX idempotency_keys_by_time ON idempotency_keys (create_time);
INSERT INTO idempotency_keys (project_id, key, message_id, create_time)
  SELECT project_id, idempotency_key, id, create_time FROM messages
  WHERE idempotency_key IS NOT NULL;
DROP INDEX messages_idempotency;

CREATE FUNCTION rio_delete_project_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM idempotency_keys WHERE project_id = OLD.id;
  RETURN NULL;
END
$$;
CREATE TRIGGER projects_deleted_keys AFTER DELETE ON projects
  FOR EACH ROW EXECUTE FUNCTION rio_delete_project_keys();

CREATE TABLE rio_history_partitions (
  suffix     text PRIMARY KEY,
  lower_time timestamptz,  -- NULL: from the beginning
  upper_time timestamptz NOT NULL
);

-- The smallest version-7 UUID of t's millisecond: a range's bound.
CREATE FUNCTION rio_uuid_at(t timestamptz) RETURNS uuid
  LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0')
          || '00000000000000000000')::uuid
$$;

-- A random version-7 UUID of t's millisecond, for rows written by hand.
CREATE FUNCTION rio_new_uuid(t timestamptz DEFAULT clock_timestamp())
  RETURNS uuid LANGUAGE sql VOLATILE STRICT AS $$
  SELECT (substr(rio_uuid_at(t)::text, 1, 14) || '7'
          || substr(gen_random_uuid()::text, 16))::uuid
$$;

ALTER TABLE messages RENAME TO messages_legacy;
ALTER INDEX messages_pkey RENAME TO messages_legacy_pkey;
ALTER INDEX messages_by_time RENAME TO messages_legacy_by_time;
ALTER TABLE deliveries RENAME TO deliveries_legacy;
ALTER INDEX deliveries_pkey RENAME TO deliveries_legacy_pkey;
ALTER INDEX deliveries_due RENAME TO deliveries_legacy_due;
ALTER INDEX deliveries_by_message RENAME TO deliveries_legacy_by_message;
ALTER INDEX deliveries_by_handler RENAME TO deliveries_legacy_by_handler;
ALTER INDEX deliveries_unsucceeded RENAME TO deliveries_legacy_unsucceeded;
ALTER INDEX deliveries_by_recovery RENAME TO deliveries_legacy_by_recovery;
DROP TRIGGER deliveries_status_counted ON deliveries_legacy;
ALTER TABLE attempts RENAME TO attempts_legacy;
ALTER INDEX attempts_pkey RENAME TO attempts_legacy_pkey;

CREATE TABLE messages (LIKE messages_legacy INCLUDING DEFAULTS
  INCLUDING CONSTRAINTS) PARTITION BY RANGE (id);
ALTER TABLE messages ADD PRIMARY KEY (id);
CREATE INDEX messages_by_time ON messages (project_id, create_time DESC);

CREATE TABLE deliveries (LIKE deliveries_legacy INCLUDING DEFAULTS
  INCLUDING CONSTRAINTS) PARTITION BY RANGE (id);
ALTER TABLE deliveries ADD PRIMARY KEY (id);
CREATE INDEX deliveries_due ON deliveries (next_attempt_time)
  WHERE status = 'PENDING';
CREATE INDEX deliveries_by_message ON deliveries (message_id);
CREATE INDEX deliveries_by_handler ON deliveries (handler_id, create_time DESC);
CREATE INDEX deliveries_unsucceeded ON deliveries (handler_id, create_time DESC)
  WHERE status <> 'SUCCEEDED';
CREATE INDEX deliveries_by_recovery ON deliveries (recovery_id)
  WHERE recovery_id IS NOT NULL;
CREATE TRIGGER deliveries_status_counted AFTER UPDATE OF status ON deliveries
  FOR EACH ROW WHEN (OLD.status <> 'PENDING' AND OLD.status <> NEW.status)
  EXECUTE FUNCTION rio_count_status_change();

CREATE TABLE attempts (LIKE attempts_legacy INCLUDING DEFAULTS
  INCLUDING CONSTRAINTS) PARTITION BY RANGE (delivery_id);
ALTER TABLE attempts ADD PRIMARY KEY (delivery_id, number);

DO $$
DECLARE
  bound uuid := rio_uuid_at(now());
  key text;
  t text;
  kept boolean := false;
BEGIN
  FOREACH t IN ARRAY ARRAY['messages', 'deliveries', 'attempts'] LOOP
    key := CASE t WHEN 'attempts' THEN 'delivery_id' ELSE 'id' END;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', t || '_legacy') INTO kept;
    IF NOT kept THEN
      EXECUTE format('DROP TABLE %I', t || '_legacy');
      CONTINUE;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= %L)',
                   t || '_legacy', key, bound) INTO kept;
    IF kept THEN
      EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I DEFAULT',
                     t, t || '_legacy');
    ELSE
      EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM '
                     '(MINVALUE) TO (%L)', t, t || '_legacy', bound);
    END IF;
  END LOOP;
  IF to_regclass('messages_legacy') IS NOT NULL
     OR to_regclass('deliveries_legacy') IS NOT NULL
     OR to_regclass('attempts_legacy') IS NOT NULL THEN
    INSERT INTO rio_history_partitions VALUES ('legacy', NULL, now());
  END IF;
END
$$;

-- Creates the ranges that cover [from_time, to_time) and do not exist yet,
-- on a grid of `width` from the Unix epoch (clipped where a range made with
-- another width, or the legacy range, covers part of a grid cell); returns
-- how many. Each range's tables are created apart and then attached, which
-- locks the parents in SHARE UPDATE EXCLUSIVE mode only: emits, outcome
-- writes and reads go on meanwhile. One caller at a time (an advisory lock).
CREATE FUNCTION rio_create_partitions(from_time timestamptz,
                                      to_time timestamptz, width interval)
  RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  w double precision := extract(epoch FROM width);
  lo timestamptz;
  hi timestamptz;
  covered timestamptz;
  next_lower timestamptz;
  suffix text;
  t text;
  made integer := 0;
BEGIN
  IF w < 1 THEN
    RAISE EXCEPTION 'partition width % is shorter than a second', width;
  END IF;
  PERFORM pg_advisory_xact_lock(7498097);
  lo := to_timestamp(floor(extract(epoch FROM from_time) / w) * w);
  WHILE lo < to_time LOOP
    SELECT max(upper_time) INTO covered FROM rio_history_partitions
      WHERE coalesce(lower_time, '-infinity') <= lo AND upper_time > lo;
    IF covered IS NOT NULL THEN
      lo := covered;
      CONTINUE;
    END IF;
    hi := to_timestamp((floor(extract(epoch FROM lo) / w) + 1) * w);
    SELECT min(lower_time) INTO next_lower FROM rio_history_partitions
      WHERE lower_time > lo AND lower_time < hi;
    hi := coalesce(next_lower, hi);
    suffix := 'p' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD"t"HH24MISS');
    FOREACH t IN ARRAY ARRAY['messages', 'deliveries', 'attempts'] LOOP
      EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS '
                     'INCLUDING CONSTRAINTS)', t || '_' || suffix, t);
      EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM '
                     '(%L) TO (%L)', t, t || '_' || suffix, rio_uuid_at(lo),
                     rio_uuid_at(hi));
    END LOOP;
    INSERT INTO rio_history_partitions VALUES (suffix, lo, hi);
    made := made + 1;
    lo := hi;
  END LOOP;
  RETURN made;
END
$$;
)sql";

}  // namespace

const std::vector<Migration>& SchemaMigrations() {
  static const auto* migrations = new std::vector<Migration>{
      {1, "catalog: projects, senders, handlers", kCatalogSchema},
      {2, "messages, deliveries, attempts", kDeliverySchema},
      {3, "monitoring: manual attempts, recoveries, handler health",
       kMonitoringSchema},
      {4, "hot path without foreign-key checks", kHotPathSchema},
      {5, "handler secrets sealed at rest", kSecretsSchema},
      {6, "scoped access tokens", kAccessTokensSchema},
      {7, "handler client certificates", kClientCertificateSchema},
      {8, "per-handler counters by minute and hour", kStatsSchema},
      {9, "history partitioned by time", kPartitionSchema},
  };
  return *migrations;
}

absl::StatusOr<int> ApplyMigrations(PgConnection& conn,
                                    const std::vector<Migration>& migrations) {
  RIO_RETURN_IF_ERROR(conn.Exec(absl::StrCat("SELECT pg_advisory_lock(",
                                             kMigrationLockKey, ")"))
                          .status());
  absl::Cleanup unlock = [&conn] {
    if (conn.ok()) {
      (void)conn.Exec(
          absl::StrCat("SELECT pg_advisory_unlock(", kMigrationLockKey, ")"));
    }
  };
  RIO_RETURN_IF_ERROR(conn.Exec(R"sql(
      CREATE TABLE IF NOT EXISTS rio_schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        apply_time timestamptz NOT NULL DEFAULT now()))sql")
                          .status());
  RIO_ASSIGN_OR_RETURN(
      PgResult current,
      conn.Exec("SELECT coalesce(max(version), 0) FROM rio_schema_migrations"));
  int64_t version = current.GetInt64(0, 0);
  int64_t newest = migrations.empty() ? 0 : migrations.back().version;
  if (version > newest) {
    return absl::FailedPreconditionError(
        absl::StrCat("the database schema is at version ", version,
                     ", newer than this rio-server knows (", newest,
                     "); upgrade rio-server"));
  }
  int applied = 0;
  for (const Migration& m : migrations) {
    if (m.version <= version) continue;
    absl::Status status = conn.InTransaction([&]() -> absl::Status {
      RIO_RETURN_IF_ERROR(conn.ExecScript(m.sql));
      return conn
          .Exec(
              "INSERT INTO rio_schema_migrations (version, name) "
              "VALUES ($1, $2)",
              {std::to_string(m.version), std::string(m.name)})
          .status();
    });
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat("migration ", m.version, " (", m.name,
                                       ") failed: ", status.message()));
    }
    std::fprintf(stderr, "rio-server: applied migration %d (%s)\n", m.version,
                 m.name);
    ++applied;
  }
  return applied;
}

}  // namespace rio::store
