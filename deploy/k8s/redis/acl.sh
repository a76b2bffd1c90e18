#!/bin/sh
# Writes Redis ACL users from the environment to the file named by $1 (the
# passwords are never committed). Used by the Compose entrypoint and the
# Kubernetes Redis pods; deploy/validate.sh checks the result against a
# real redis-server.
#   pipeline: writes hot state under insite:* (SET, ZADD, LPUSH, EXPIRE, ...)
#   query:    reads, and fills its cache with ClickHouse answers under
#             insite:* (SET, ZADD, EXPIRE only: no DEL, no lists, no hashes)
#   analyst:  reads insite:* only
# The default user is switched off.
set -eu
out=${1:?usage: acl.sh OUTPUT_FILE}
: "${REDIS_PIPELINE_PASSWORD:?}" "${REDIS_QUERY_PASSWORD:?}" "${REDIS_ANALYST_PASSWORD:?}"
prefix=${REDIS_KEY_PATTERN:-insite:*}
umask 077
{
    echo "user default off resetkeys -@all"
    echo "user pipeline on >${REDIS_PIPELINE_PASSWORD} resetkeys ~${prefix} resetchannels -@all +@read +@write +@connection -@dangerous +ping"
    echo "user query on >${REDIS_QUERY_PASSWORD} resetkeys ~${prefix} resetchannels -@all +@read +@connection -@dangerous +ping +set +zadd +expire"
    echo "user analyst on >${REDIS_ANALYST_PASSWORD} resetkeys %R~${prefix} resetchannels -@all +@read +@connection -@dangerous +ping"
    if [ -n "${REDIS_REPLICATION_PASSWORD:-}" ]; then
        # Redis Cluster / replicas: the user nodes authenticate as.
        echo "user replication on >${REDIS_REPLICATION_PASSWORD} resetkeys ~* &* +@all"
    fi
} > "$out"
