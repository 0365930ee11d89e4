#!/usr/bin/env bash
# Creates anonlib's databases in the postgres container (docker-compose.yml mounts this folder
# on /docker-entrypoint-initdb.d, so it runs once, when the data volume is still empty).
#
#   ANONLIB_DATABASES  space-separated names: the lookup store / job queue, then one index
#                      database per Orthanc node (default: anonlib anonlib_intake anonlib_research)
#   POSTGRES_USER      owner of the databases (set by the postgres image)
#
# Idempotent: an existing database is left alone. Names are quoted as identifiers (%I), so
# any name PostgreSQL accepts works.
set -euo pipefail

for db in ${ANONLIB_DATABASES:-anonlib anonlib_intake anonlib_research}; do
  echo "anonlib: ensuring database ${db}"
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \
       -v db="${db}" <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
done
