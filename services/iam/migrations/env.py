from services.iam.repo import Base
from services.kit.db import run_migrations

run_migrations(Base.metadata)
