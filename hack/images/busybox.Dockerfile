# For kind-e2e only: the tests' busybox under the name the local cluster gives it.
FROM busybox:1.36
