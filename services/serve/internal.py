"""What the serve service and its serving processes share besides their tables: the token the
serving processes' engine checks (both know the service's secret key; clients never do)."""

from __future__ import annotations

import hashlib
import hmac

TOKEN_HEADER = "x-tuneforge-engine-token"


def engine_token(secret: str) -> str:
    return hmac.new(secret.encode(), b"tuneforge-serve-engine", hashlib.sha256).hexdigest()
