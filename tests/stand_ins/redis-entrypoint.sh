#!/bin/sh
# Like the official redis image: `redis-server ARGS` runs as the redis user, in /data.
set -eu
if [ "$1" = redis-server ]; then
    exec setpriv --reuid=redis --regid=redis --init-groups -- "$@"
fi
exec "$@"
