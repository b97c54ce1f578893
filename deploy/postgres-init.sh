#!/usr/bin/env bash
# Phoenix's and the dashboard's databases on one PostgreSQL server, each owned by its own login
# role that cannot connect to the other's. The postgres image runs this once, when it
# initialises an empty data volume (/docker-entrypoint-initdb.d); a later change needs SQL by hand.
# Passwords come from the environment (.env through docker-compose.yml), never from this file.
# Role and database names can be overridden (the tests do), and default to phoenix and dashboard.
set -euo pipefail
: "${PHOENIX_DB_PASSWORD:?PHOENIX_DB_PASSWORD is not set}"
: "${DASHBOARD_DB_PASSWORD:?DASHBOARD_DB_PASSWORD is not set}"
export PHOENIX_DB_PASSWORD DASHBOARD_DB_PASSWORD

# psql's \getenv keeps the passwords out of the command line; :"name" and :'value' quote safely.
psql -v ON_ERROR_STOP=1 --no-psqlrc \
  --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
  -v phoenix_db="${PHOENIX_DB_NAME:-phoenix}" \
  -v dashboard_db="${DASHBOARD_DB_NAME:-dashboard}" <<'SQL'
\getenv phoenix_password PHOENIX_DB_PASSWORD
\getenv dashboard_password DASHBOARD_DB_PASSWORD
CREATE ROLE :"phoenix_db" LOGIN PASSWORD :'phoenix_password';
CREATE DATABASE :"phoenix_db" OWNER :"phoenix_db";
REVOKE ALL ON DATABASE :"phoenix_db" FROM PUBLIC;
CREATE ROLE :"dashboard_db" LOGIN PASSWORD :'dashboard_password';
CREATE DATABASE :"dashboard_db" OWNER :"dashboard_db";
REVOKE ALL ON DATABASE :"dashboard_db" FROM PUBLIC;
SQL
echo "Created the databases ${PHOENIX_DB_NAME:-phoenix} and ${DASHBOARD_DB_NAME:-dashboard}."
