# syntax=docker/dockerfile:1
# Multi-stage build of a small, static shim6gw image.
#
#   docker build -t shim6gw .
#   docker run --network host --cap-drop ALL --cap-add NET_ADMIN \
#     --device /dev/net/tun -v /etc/shim6gw:/etc/shim6gw:ro shim6gw
#
# Docker mounts /proc/sys read-only: enable net.ipv6.conf.all.forwarding on
# the host (the daemon checks it and says so when it is off).
#
# Host networking is required: the gateway installs policy rules and routes
# in the host's network namespace and reads the uplinks' netlink events.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/shim6gw ./cmd/shim6gw

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/shim6gw /usr/local/bin/shim6gw
# The admin listener (metrics, health); loopback by default in the config.
EXPOSE 9146
# CAP_NET_ADMIN (netlink, TUN) only reaches a non-root process through file
# or ambient capabilities, which distroless cannot set; so the process runs
# as uid 0 and the container keeps no capability but NET_ADMIN (--cap-drop
# ALL above). Under systemd the daemon runs as its own user instead.
USER 0
# Ready = TUN up, an uplink usable, rules and routes intact (/readyz);
# the health verb asks the admin.listen of the same configuration.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/shim6gw", "health", "--config", "/etc/shim6gw/shim6gw.yaml", "--timeout", "4s"]
ENTRYPOINT ["/usr/local/bin/shim6gw"]
CMD ["run", "--config", "/etc/shim6gw/shim6gw.yaml"]
