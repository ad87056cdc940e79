from services.kit.auth import AuthBase
from services.kit.db import run_migrations

run_migrations(AuthBase.metadata)
