# syntax=docker/dockerfile:1
# The tidemark binary (./cmd/tidemark: the whole CLI with the example job) in a small image;
# docker-compose.yml runs every tidemark process from it. There is no Docker engine where
# tidemark is developed: deploy.TestComposeMatchesHarness checks this file (its Go version
# against go.mod) and the compose file, but nothing here builds it.
#
#   docker build -t tidemark:dev .
#   docker run --rm tidemark:dev --help

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOTOOLCHAIN=local go build -trimpath -ldflags="-s -w" -o /out/tidemark ./cmd/tidemark \
    && mkdir -p /out/state

# distroless: no shell, no package manager; runs as uid 65532
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/tidemark /usr/local/bin/tidemark
# the working folder (cdc checkpoints, an embedded store), writable by the nonroot user
COPY --from=build --chown=65532:65532 /out/state /var/lib/tidemark
WORKDIR /var/lib/tidemark
ENTRYPOINT ["/usr/local/bin/tidemark"]
CMD ["--help"]
