"""See common/README.md."""
