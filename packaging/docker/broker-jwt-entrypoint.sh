#!/bin/sh
# Entrypoint of the jwt-mode broker image (packaging/docker/broker-jwt.Dockerfile):
# lays out the runtime directory of broker-config/mosquitto-jwt.conf in the
# working directory (/var/lib/callsignal-broker), creates the user-token
# secret and the service password once (kept in the "secrets" volume that
# docker-compose.yml shares read-only with the service container), makes the
# listeners listen on every interface of the container, and runs Mosquitto.
set -eu
install -d -m 750 secrets
ln -sfn /usr/lib/callsignal/libcallsignal_auth.so callsignal_auth.so
(
  umask 027
  [ -s secrets/jwt_secret ] || openssl rand -base64 48 | tr -d '\n' > secrets/jwt_secret
  [ -s secrets/service_password ] || openssl rand -hex 32 | tr -d '\n' > secrets/service_password
)
# Mosquitto drops to the user mosquitto before loading the plugin; the service
# container's user (uid 10001, service/Dockerfile) reads them through the group.
chown -R mosquitto:10001 secrets
chmod 640 secrets/jwt_secret secrets/service_password
sed -E 's/^(listener [0-9]+) 127\.0\.0\.1$/\1/' /etc/callsignal/mosquitto-jwt.conf > /tmp/mosquitto-jwt.conf
exec mosquitto -c /tmp/mosquitto-jwt.conf
