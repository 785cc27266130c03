"""Conformance harness: golden vectors, tolerances, property checks and `bogc-ref verify`."""
