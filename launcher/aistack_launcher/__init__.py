"""The embedded launcher: every service, Redis and Envoy on one machine, from one command."""
