// Consumer module that pins golang-migrate's CLI for hack/build-tools.sh
// (the migration step's tests check that a database goes back and forth between it and our runner).
module initpipeline.dev/hack/tools/golang-migrate

go 1.25.11

require github.com/golang-migrate/migrate/v4 v4.20.1
