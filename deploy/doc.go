// Package deploy holds what operators deploy (the Kubernetes manifests
// under kubernetes/; the Dockerfile and docker-compose.yml at the
// repository's root) and the test that checks them against Gatehouse:
// probe paths the router serves, settings config reads, non-root and
// read-only containers with resource limits, and a static binary built
// the way the Dockerfile builds it. It has no code.
package deploy
