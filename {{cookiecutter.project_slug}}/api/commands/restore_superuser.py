"""`python -m commands.restore_superuser EMAIL`: make an account an active
superuser again (`make restore-superuser EMAIL=...`).

The API refuses to demote or deactivate the last active superuser; this is
the way back when the accounts were locked out some other way (by hand in the
database, say). It needs the database, not the API.
"""

import argparse
import asyncio
import sys

from app.core.config import get_settings
from app.core.db import create_engine, create_sessionmaker
from app.services.users import get_by_email


async def restore(email: str) -> bool:
    """Make the account an active superuser again; False if no account has the e-mail."""
    engine = create_engine(get_settings())
    try:
        async with create_sessionmaker(engine)() as session:
            user = await get_by_email(session, email)
            if user is None:
                return False
            user.is_active = user.is_superuser = True
            await session.commit()
            return True
    finally:
        await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description="Make an account an active superuser again.")
    parser.add_argument("email", help="the account's e-mail")
    email = parser.parse_args().email.lower()
    if not asyncio.run(restore(email)):
        print(f"No account has the e-mail {email}", file=sys.stderr)
        return 1
    print(f"{email} is an active superuser again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
