"""The small kit every aistack service is built on: config, auth, errors, metrics, traces, logs, server."""
