#!/usr/bin/env bash
# Nightly backup of a Device Factory Service database (docs/deployment.md, "Backup").
# The master key is NOT in it: keep the key file's copy apart (another place, another
# custodian): a database backup alone opens no private key.
set -euo pipefail
: "${DEVICEFACTORY_DATABASE_URL:?set it (EnvironmentFile /etc/devicefactory/devicefactory.env)}"
target=${1:-/var/backups/devicefactory}
umask 077
mkdir -p "$target"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
url=${DEVICEFACTORY_DATABASE_URL/postgresql+psycopg:/postgresql:}
pg_dump --format=custom --file="$target/devicefactory-$stamp.dump" "$url"
echo "$target/devicefactory-$stamp.dump"
