// Package deploy is the container build of tidemark's production topology:
// docker-compose.yml and Dockerfile at the repository root, and here the
// HBase image (hbase/) and the example's source registry (sources.yaml).
//
// It has no Go code of its own. Its test, TestComposeMatchesHarness, is
// what stands in for running the compose file (no Docker engine runs where
// tidemark is developed): it checks that the compose file and the test
// harness of scripts/services agree — the services' versions, ports,
// server options and TIDEMARK_* variables — and that every tidemark
// process's command line and variables are ones the CLI accepts.
package deploy
