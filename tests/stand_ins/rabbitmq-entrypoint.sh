#!/bin/sh
# Like the official rabbitmq image: RABBITMQ_DEFAULT_USER/PASS become the
# broker's first account, reachable from other containers.
set -eu
if [ "$1" = rabbitmq-server ]; then
    cat > /etc/rabbitmq/rabbitmq.conf <<CONF
default_user = ${RABBITMQ_DEFAULT_USER:-guest}
default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}
loopback_users = none
listeners.tcp.default = 5672
CONF
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups -- \
        /usr/lib/rabbitmq/bin/rabbitmq-server
fi
exec "$@"
