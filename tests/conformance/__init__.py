"""Tests of the conformance harness (bogc-ref verify, golden vectors)."""
