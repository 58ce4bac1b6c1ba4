module initpipeline.dev/hack/images/pause

go 1.24.0
