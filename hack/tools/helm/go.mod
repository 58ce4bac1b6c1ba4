// Consumer module that pins Helm for hack/build-tools.sh.
module initpipeline.dev/hack/tools/helm

go 1.24.0

require helm.sh/helm/v3 v3.19.5
