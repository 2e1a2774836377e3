"""What operators see of a running Headwater: traces, structured logs and metrics."""
