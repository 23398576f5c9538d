# syntax=docker/dockerfile:1
#
# One image for every subcommand: codevector manager | gateway | keys | dev.
#
#   docker build -t registry.example.com/codevector:v1.0.0 .
#
# Build stage: a static binary (CGO_ENABLED=0), so the runtime image needs
# no libc. BUILDPLATFORM/TARGETARCH let `docker buildx` cross-compile
# without emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
WORKDIR /src
# As in the Makefile: modules resolve through the module proxy as needed.
ENV GOFLAGS=-mod=mod
# Modules first, in their own layer: source edits do not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# What `codevector version` prints (.git is not in the build context):
#   docker build --build-arg VERSION=v1.0.0 --build-arg COMMIT=$(git rev-parse HEAD) .
ARG VERSION=dev
ARG COMMIT=
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w -X github.com/codevector/codevector/internal/commands.version=$VERSION -X github.com/codevector/codevector/internal/commands.commit=$COMMIT" -o /out/codevector .

# Runtime: distroless static, no shell or package manager, non-root
# (uid 65532). The manifests in config/ also set runAsNonRoot and a
# read-only root filesystem; the binary writes nothing to disk.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/codevector /codevector
USER 65532:65532
ENTRYPOINT ["/codevector"]
CMD ["--help"]
