"""The lookup store's schema as SQLite DDL, for :class:`anonlib.store.lite.SqliteStore`.

These are the statements SQLAlchemy compiles from :mod:`anonlib.store.tables` for SQLite (what
:class:`~anonlib.store.sql.SqlStore` creates), spelled out so that opening the default store
does not import SQLAlchemy; a unit test compiles them again and compares. Tables come in
the order SQLAlchemy creates them (dependencies first), each with its indexes.
"""

from __future__ import annotations

__all__ = ["TABLES"]

TABLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('anonlib_schema_version', (
        'CREATE TABLE anonlib_schema_version (\n\tversion INTEGER NOT NULL, \n\tapplied_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tCONSTRAINT anonlib_schema_version_pkey PRIMARY KEY (version)\n)',
    )),
    ('anonlib_secret', (
        'CREATE TABLE anonlib_secret (\n\tid INTEGER NOT NULL, \n\tsecret BLOB NOT NULL, \n\tcreated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tCONSTRAINT anonlib_secret_pkey PRIMARY KEY (id), \n\tCONSTRAINT anonlib_secret_id_check CHECK (id = 1), \n\tCONSTRAINT anonlib_secret_secret_check CHECK (length(secret) = 32)\n)',
    )),
    ('anonlib_patient', (
        "CREATE TABLE anonlib_patient (\n\tid INTEGER NOT NULL, \n\tpatient_id TEXT NOT NULL, \n\tissuer TEXT DEFAULT '' NOT NULL, \n\tpseudonym TEXT NOT NULL, \n\tdate_shift_days INTEGER NOT NULL, \n\tcreated_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tCONSTRAINT anonlib_patient_pkey PRIMARY KEY (id), \n\tCONSTRAINT anonlib_patient_patient_id_issuer_key UNIQUE (patient_id, issuer), \n\tCONSTRAINT anonlib_patient_pseudonym_key UNIQUE (pseudonym), \n\tCONSTRAINT anonlib_patient_patient_id_check CHECK (patient_id <> ''), \n\tCONSTRAINT anonlib_patient_date_shift_days_check CHECK (date_shift_days <> 0)\n)",
    )),
    ('anonlib_instance', (
        "CREATE TABLE anonlib_instance (\n\toriginal_sop_uid TEXT NOT NULL, \n\tnew_sop_uid TEXT NOT NULL, \n\toriginal_study_uid TEXT NOT NULL, \n\tstatus TEXT NOT NULL, \n\toutput TEXT DEFAULT '' NOT NULL, \n\treason TEXT DEFAULT '' NOT NULL, \n\tsha256 TEXT DEFAULT '' NOT NULL, \n\tprocessed_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tCONSTRAINT anonlib_instance_pkey PRIMARY KEY (original_sop_uid), \n\tCONSTRAINT anonlib_instance_status_check CHECK (status IN ('written', 'quarantined'))\n)",
        'CREATE INDEX anonlib_instance_original_study_uid_idx ON anonlib_instance (original_study_uid)',
    )),
    ('anonlib_delivery', (
        "CREATE TABLE anonlib_delivery (\n\tnode TEXT NOT NULL, \n\torthanc_study_id TEXT NOT NULL, \n\tlast_update TEXT DEFAULT '' NOT NULL, \n\tinstances INTEGER DEFAULT 0 NOT NULL, \n\treleased INTEGER DEFAULT 0 NOT NULL, \n\tquarantined INTEGER DEFAULT 0 NOT NULL, \n\tnew_study_uid TEXT DEFAULT '' NOT NULL, \n\tstatus TEXT NOT NULL, \n\treason TEXT DEFAULT '' NOT NULL, \n\truns INTEGER DEFAULT 1 NOT NULL, \n\tdelivered_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tCONSTRAINT anonlib_delivery_pkey PRIMARY KEY (node, orthanc_study_id), \n\tCONSTRAINT anonlib_delivery_status_check CHECK (status IN ('done', 'held'))\n)",
    )),
    ('anonlib_pixel_finding', (
        "CREATE TABLE anonlib_pixel_finding (\n\toriginal_sop_uid TEXT NOT NULL, \n\tnew_sop_uid TEXT NOT NULL, \n\toutcome TEXT NOT NULL, \n\treason TEXT DEFAULT '' NOT NULL, \n\tboxes JSON NOT NULL, \n\tfound_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tCONSTRAINT anonlib_pixel_finding_pkey PRIMARY KEY (original_sop_uid), \n\tCONSTRAINT anonlib_pixel_finding_outcome_check CHECK (outcome IN ('masked', 'quarantined'))\n)",
    )),
    ('anonlib_review', (
        "CREATE TABLE anonlib_review (\n\toriginal_sop_uid TEXT NOT NULL, \n\tdecision TEXT NOT NULL, \n\tregions JSON NOT NULL, \n\treviewer TEXT DEFAULT '' NOT NULL, \n\tdecided_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tCONSTRAINT anonlib_review_pkey PRIMARY KEY (original_sop_uid), \n\tCONSTRAINT anonlib_review_decision_check CHECK (decision IN ('release', 'mask', 'reject'))\n)",
    )),
    ('anonlib_access_log', (
        "CREATE TABLE anonlib_access_log (\n\tid INTEGER NOT NULL, \n\taccessed_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\taccessor TEXT NOT NULL, \n\taction TEXT NOT NULL, \n\tresult TEXT DEFAULT '' NOT NULL, \n\tentries INTEGER DEFAULT 0 NOT NULL, \n\tdigest TEXT DEFAULT '' NOT NULL, \n\tCONSTRAINT anonlib_access_log_pkey PRIMARY KEY (id), \n\tCONSTRAINT anonlib_access_log_action_check CHECK (action IN ('lookup', 'export')), \n\tCONSTRAINT anonlib_access_log_entries_check CHECK (entries >= 0)\n)",
    )),
    ('anonlib_uid', (
        'CREATE TABLE anonlib_uid (\n\toriginal_uid TEXT NOT NULL, \n\tnew_uid TEXT NOT NULL, \n\trecorded_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tCONSTRAINT anonlib_uid_pkey PRIMARY KEY (original_uid)\n)',
        'CREATE INDEX anonlib_uid_new_uid_idx ON anonlib_uid (new_uid)',
    )),
    ('anonlib_study', (
        "CREATE TABLE anonlib_study (\n\toriginal_study_uid TEXT NOT NULL, \n\toriginal_accession TEXT DEFAULT '' NOT NULL, \n\tpseudonym TEXT NOT NULL, \n\tnew_study_uid TEXT NOT NULL, \n\tshifted_study_date TEXT DEFAULT '' NOT NULL, \n\tfirst_processed_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tlast_processed_at DATETIME DEFAULT CURRENT_TIMESTAMP NOT NULL, \n\tCONSTRAINT anonlib_study_pkey PRIMARY KEY (original_study_uid), \n\tCONSTRAINT anonlib_study_new_study_uid_key UNIQUE (new_study_uid), \n\tCONSTRAINT anonlib_study_pseudonym_fkey FOREIGN KEY(pseudonym) REFERENCES anonlib_patient (pseudonym)\n)",
        'CREATE INDEX anonlib_study_pseudonym_idx ON anonlib_study (pseudonym)',
    )),
)
