#!/bin/sh
# Compose entrypoint of the Redis container: ACL from the environment, then
# redis-server with it.
set -eu
/bin/sh /etc/redis/acl.sh /data/users.acl
exec redis-server --aclfile /data/users.acl --appendonly no --save "" \
    --maxmemory "${REDIS_MAXMEMORY:-1gb}" --maxmemory-policy volatile-lru
