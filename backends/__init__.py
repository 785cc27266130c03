"""Array-library backends of BOGC (installed as ``bogc_ref.backends``)."""
