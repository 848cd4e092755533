// Package e2e holds Streamline's end-to-end tests: real Kafka clients
// (franz-go, kcat) over real TCP against the all-in-one server, in-process
// or as a child process that the tests SIGKILL and restart.
package e2e
