// +heroku goVersion go1.26
// +heroku install ./cmd/drainmeter
module github.com/drainmeter/drainmeter

go 1.26

require (
	github.com/DataDog/sketches-go v1.4.8
	github.com/axiomhq/hyperloglog v0.3.0
	github.com/go-chi/chi/v5 v5.5.0
	github.com/kelseyhightower/envconfig v1.4.0
)

require (
	github.com/dgryski/go-metro v0.0.0-20250106013310-edb8663e5e33 // indirect
	github.com/kamstrup/intmap v0.5.2 // indirect
	google.golang.org/protobuf v1.36.11 // indirect
)
