// Consumer module that pins CoreDNS for hack/build-tools.sh.
module initpipeline.dev/hack/tools/coredns

go 1.25.0

require github.com/coredns/coredns v1.14.7
