# syntax=docker/dockerfile:1
# Multi-stage build: a static herald binary on a distroless base, running as a non-root user.
#   docker build -t herald .
#   docker run --rm -p 8000:8000 -e HERALD_REDIS_URL=redis://redis:6379/0 \
#     -e HERALD_API_KEY=change-me-to-a-long-random-key \
#     -e HERALD_PUBLIC_URL=https://herald.example.com herald
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/herald ./cmd/herald

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/herald /usr/local/bin/herald
USER nonroot:nonroot
# In a container herald must listen on all interfaces; it refuses to do so without an API key
# (HERALD_API_KEY) unless HERALD_ALLOW_NO_AUTH=true. 0.0.0.0 names no host channel servers can
# call back, so set HERALD_PUBLIC_URL to the URL they reach herald at: without it the response_url
# herald makes is http://<container hostname>:8000 (which other containers on its Docker network
# resolve, and nothing else), and it warns so at start-up.
ENV HERALD_ADDR=0.0.0.0:8000
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/herald"]
CMD ["serve"]
