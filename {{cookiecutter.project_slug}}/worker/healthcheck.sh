#!/bin/sh
# The worker image's healthcheck: exit 0 while this container's worker is alive,
# that is while its main process keeps touching its heartbeat file
# (worker/heartbeat.py); with --ready, only while it also consumes its queue.
# Two files read, no Python and no broker round trip: make bench measures it
# against a ping through the broker. A readiness probe runs it with --ready; a
# liveness probe without, and with a limit above the broker outages a worker
# should ride out (the heartbeat waits while it reconnects).
#
#   sh healthcheck.sh [--ready] [STALE_AFTER]
#
# STALE_AFTER (30 s): how old a heartbeat may be, several beats (5 s apart).
set -eu
ready=no
if [ "${1:-}" = "--ready" ]; then
    ready=yes
    shift
fi
stale_after="${1:-30}"
if [ "$#" -gt 1 ]; then
    echo "usage: sh healthcheck.sh [--ready] [STALE_AFTER]" >&2
    exit 2
fi
directory="${TMPDIR:-/tmp}"
beat=$(stat -c %Y "$directory/worker.alive" 2>/dev/null) || exit 1
age=$(($(date +%s) - beat))
# A heartbeat from the future (the clock set back) proves nothing.
[ "$age" -ge 0 ] && [ "$age" -lt "$stale_after" ] || exit 1
[ "$ready" = no ] || [ -e "$directory/worker.ready" ]
