"""The service's modules, grouped by pipeline concern (see README, "How it works")."""
