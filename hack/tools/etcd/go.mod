// Consumer module that pins etcd for hack/build-tools.sh (etcd's own go.mod
// has replace directives, so it cannot be built with `go install pkg@version`).
module initpipeline.dev/hack/tools/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
