#!/usr/bin/env bash
# Starts the local database servers and MQTT broker the integration tests use, when they are not running.
# These are the machine's own Debian packages; nothing is installed here.
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    for _ in $(seq 1 60); do up "$1" && return 0; sleep 0.5; done
    echo "service on port $1 did not come up" >&2
    return 1
}

if ! up 3306; then
    echo "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_port 3306 || exit 1
fi
if ! up 5432; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
    wait_port 5432 || exit 1
fi
if ! up 1883; then
    echo "starting Mosquitto"
    mosquitto -d -c /etc/mosquitto/mosquitto.conf
    wait_port 1883 || exit 1
fi
exit 0
