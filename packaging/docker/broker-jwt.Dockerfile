# Container image of the jwt-mode broker: Debian's mosquitto package with the
# callsignal_auth plugin (broker-config/plugin/), which is built for Debian's
# Mosquitto 2.0 and so cannot go into the Alpine-based eclipse-mosquitto image.
# Build context: the repository root (docker-compose.yml, profile "jwt"):
#   docker build -f packaging/docker/broker-jwt.Dockerfile -t callsignal-broker-jwt .
# The entrypoint (broker-jwt-entrypoint.sh) lays out the runtime directory
# that broker-config/mosquitto-jwt.conf expects and creates its secrets once.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config python3 mosquitto mosquitto-dev libmosquitto-dev \
      libpaho-mqtt-dev libmicrohttpd-dev libjansson-dev libjwt-dev libssl-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
 && cmake --build build --target callsignal_auth -j"$(nproc)"

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      mosquitto mosquitto-clients libjwt0 openssl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/broker-config/plugin/libcallsignal_auth.so /usr/lib/callsignal/libcallsignal_auth.so
COPY broker-config/mosquitto-jwt.conf /etc/callsignal/mosquitto-jwt.conf
COPY packaging/docker/broker-jwt-entrypoint.sh /usr/local/bin/broker-jwt-entrypoint
WORKDIR /var/lib/callsignal-broker
EXPOSE 1883 9001
# Ready once the service's own credential logs in and may subscribe.
HEALTHCHECK --interval=5s --timeout=5s --start-period=5s --retries=5 \
  CMD mosquitto_sub -h 127.0.0.1 -p 1883 -u callsignal-service -P "$(cat secrets/service_password)" \
      -t 'users/+/presence/+' -E -W 3 || exit 1
ENTRYPOINT ["/usr/local/bin/broker-jwt-entrypoint"]
