"""The service's modules, grouped by pipeline concern (see docs/how-it-works.md)."""
