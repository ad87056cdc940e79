"""The SDK's per-service parts, reached as `client.models`, `client.data`, ..."""
