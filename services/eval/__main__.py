"""`python -m services.eval`: run the eval service (evaluation workers run separately)."""

import asyncio

from services.eval.server import main

if __name__ == "__main__":
    asyncio.run(main())
