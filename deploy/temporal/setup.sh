#!/bin/sh
# One-shot: wait for the Temporal frontend, ensure the namespace, and register Tether's custom
# search attributes (SEARCH_ATTRIBUTES: "Name=Type ..."). Safe to re-run.
# Runs in the temporalio/admin-tools image, which ships the `temporal` CLI.
set -eu

: "${TEMPORAL_ADDRESS:=temporal:7233}"
: "${SEARCH_ATTRIBUTES:?SEARCH_ATTRIBUTES is required}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-30d}"
export TEMPORAL_ADDRESS

attempt=0
until temporal operator cluster health >/dev/null 2>&1; do
  attempt=$((attempt + 1))
  if [ "$attempt" -ge 60 ]; then
    echo "Temporal at $TEMPORAL_ADDRESS is not healthy after $attempt attempts" >&2
    exit 1
  fi
  echo "waiting for Temporal at $TEMPORAL_ADDRESS ..."
  sleep 2
done

if temporal operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE exists"
else
  temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION"
fi

# A namespace is usable a moment after it is created; retry the listing until it answers.
attempt=0
until existing="$(temporal operator search-attribute list --namespace "$NAMESPACE")"; do
  attempt=$((attempt + 1))
  [ "$attempt" -lt 30 ] || exit 1
  sleep 2
done

for pair in $SEARCH_ATTRIBUTES; do
  name="${pair%%=*}"
  type="${pair#*=}"
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "search attribute $name exists"
  else
    temporal operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type "$type"
  fi
done
echo "Temporal set up for Tether: namespace $NAMESPACE, search attributes $SEARCH_ATTRIBUTES"
