-- anonlib job queue: the source of truth for anonlib's own tables beside procrastinate's.
--
-- The queue itself is procrastinate's (its schema ships with the procrastinate package and is
-- applied by anonlib.jobs.app.ensure_queue_schema). These small tables hold what procrastinate
-- does not keep:
--   * anonlib_change_cursor:     how far the catch-up has read each Orthanc node's /changes feed;
--   * anonlib_job_outcome:       what the last attempt of each study job saw and how it ended
--                                (procrastinate keeps no error text);
--   * anonlib_rejected_instance: every instance a study job did not deliver, with its reason.
-- None holds PHI: node names, Orthanc identifiers (hashes), counts, exception class names
-- and anonlib's PHI-free messages.
--
-- Idempotent; apply in one transaction so the advisory lock is held until the end:
--
--     psql -v ON_ERROR_STOP=1 --single-transaction -f sql/jobs.sql "$DATABASE_URL"
--
-- anonlib.jobs.tables holds the SQLAlchemy equivalent (ensure_queue_schema creates the tables
-- from it under the same lock); tests/integration/test_jobs_schema.py proves the two agree.

-- Same key as anonlib.jobs.tables.QUEUE_SCHEMA_LOCK_KEY (b"anonlibq").
SELECT pg_advisory_xact_lock(7020671389173113457);

CREATE TABLE IF NOT EXISTS anonlib_change_cursor (
    node        text        NOT NULL,
    last_seq    bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT anonlib_change_cursor_pkey PRIMARY KEY (node),
    CONSTRAINT anonlib_change_cursor_last_seq_check CHECK (last_seq >= 0)
);
COMMENT ON TABLE anonlib_change_cursor IS
    'Per Orthanc node: the last /changes sequence number the catch-up has handled.';

CREATE TABLE IF NOT EXISTS anonlib_job_outcome (
    job_id         bigint      NOT NULL,
    node           text        NOT NULL,
    study_id       text        NOT NULL,
    attempt        integer     NOT NULL DEFAULT 1,
    state          text        NOT NULL,
    last_update    text        NOT NULL DEFAULT '',
    instances      integer     NOT NULL DEFAULT 0,
    error_class    text        NOT NULL DEFAULT '',
    error_message  text        NOT NULL DEFAULT '',
    updated_at     timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT anonlib_job_outcome_pkey PRIMARY KEY (job_id),
    CONSTRAINT anonlib_job_outcome_state_check
        CHECK (state IN ('running', 'done', 'held', 'gone', 'unchanged', 'waiting', 'error'))
);
CREATE INDEX IF NOT EXISTS anonlib_job_outcome_node_study_id_idx
    ON anonlib_job_outcome (node, study_id);
COMMENT ON TABLE anonlib_job_outcome IS
    'Per study job: the study state its last attempt saw (LastUpdate, instances) and how it ended, with a PHI-free error.';

-- Per study: every instance the study job did not deliver (rejected: it could not be
-- de-identified or placed) with its PHI-free reason; replaced each time the study is processed.
CREATE TABLE IF NOT EXISTS anonlib_rejected_instance (
    node         text        NOT NULL,
    study_id     text        NOT NULL,
    instance_id  text        NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    last_update  text        NOT NULL DEFAULT '',
    recorded_at  timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT anonlib_rejected_instance_pkey PRIMARY KEY (node, study_id, instance_id)
);
COMMENT ON TABLE anonlib_rejected_instance IS
    'Per study: each instance not delivered (Orthanc instance ID) with its PHI-free reason, as of the study''s last processing.';
