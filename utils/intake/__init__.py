"""Intake: what happens to a request before any build work: parse and validate it, check the secret, decode
attachments."""
