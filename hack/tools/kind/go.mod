// Consumer module that pins kind for hack/kind-e2e.sh (built from the Go module proxy like the other tools).
module initpipeline.dev/hack/tools/kind

go 1.25.11

require sigs.k8s.io/kind v0.33.0
