"""`python -m services.iam`: run the iam service (projects, API keys, the audit log)."""

import asyncio

from services.iam.server import main

if __name__ == "__main__":
    asyncio.run(main())
