"""The edge: Envoy's configuration built from the service catalog, for embedded and compose targets."""
