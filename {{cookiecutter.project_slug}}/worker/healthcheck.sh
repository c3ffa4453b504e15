#!/bin/sh
# The worker image's healthcheck: exit 0 while this container's worker is alive,
# that is while its main process keeps touching its heartbeat file
# (worker/heartbeat.py); with --ready, only while it also consumes its queue.
# Two files read, no Python and no broker round trip: make bench measures it
# against a ping through the broker. A liveness probe runs it without
# --ready, a readiness probe with it.
#
#   sh healthcheck.sh [--ready] [STALE_AFTER]
#
# STALE_AFTER (30 s): how old a heartbeat may be, several beats (5 s apart)
# and a short reconnection to the broker, during which the timer that beats waits.
set -eu
ready=no
if [ "${1:-}" = "--ready" ]; then
    ready=yes
    shift
fi
stale_after="${1:-30}"
directory="${TMPDIR:-/tmp}"
beat=$(stat -c %Y "$directory/worker.alive" 2>/dev/null) || exit 1
[ $(($(date +%s) - beat)) -lt "$stale_after" ] || exit 1
[ "$ready" = no ] || [ -e "$directory/worker.ready" ]
