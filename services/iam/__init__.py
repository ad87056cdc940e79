"""The iam service: projects, API keys with roles and expiry, and the audit log."""
