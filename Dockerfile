# syntax=docker/dockerfile:1
# Gatehouse: a static, CGO-free binary on distroless (CA certificates and
# time zones, no shell), running as an unprivileged user.
#   docker build -t gatehouse:dev --build-arg VERSION=$(git describe --tags --always) .

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The SQLite driver is pure Go: CGO off gives a static binary.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/gatehouse ./cmd/gatehouse

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/gatehouse /usr/local/bin/gatehouse
# 65532 is distroless's "nonroot"; its home is the working directory, where
# a SQLite file would go (mount a volume there, or use PostgreSQL).
USER 65532:65532
WORKDIR /home/nonroot
ENV GATEHOUSE_ENV=production \
    GATEHOUSE_ADDR=:8080 \
    GATEHOUSE_LOG_FORMAT=json
EXPOSE 8080
# No shell or curl in the image: the binary asks its own /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/gatehouse", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["serve"]
