"""Multi-modal training experiments comparing BOGC with other aggregations."""
