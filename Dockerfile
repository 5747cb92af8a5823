# Build: docker build -t replicaof .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/replicaof ./cmd/replicaof

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/replicaof replicaof && mkdir -p /var/lib/replicaof && chown replicaof /var/lib/replicaof
COPY --from=build /out/replicaof /usr/local/bin/replicaof
USER replicaof
WORKDIR /var/lib/replicaof
EXPOSE 6380 8380
ENTRYPOINT ["replicaof"]
CMD ["serve", "-c", "/etc/replicaof/replicaof.yaml"]
