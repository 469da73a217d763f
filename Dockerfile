# drainmeter outside Heroku: a static binary on distroless (CA certificates
# included, no shell), run as a non-root user. Configure it with environment
# variables (docker run --rm IMAGE web --help lists them); PORT defaults to
# 5000. With DATABASE_URL, `web` applies pending migrations when it starts.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /drainmeter ./cmd/drainmeter

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /drainmeter /drainmeter
USER nonroot:nonroot
EXPOSE 5000
ENTRYPOINT ["/drainmeter"]
CMD ["web"]
