"""`python -m services.registry`: run the model registry service."""

import asyncio

from services.registry.server import main

if __name__ == "__main__":
    asyncio.run(main())
