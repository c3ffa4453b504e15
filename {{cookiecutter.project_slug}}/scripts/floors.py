"""`python scripts/floors.py PYPROJECT NAME...`: the oldest release of each
named dependency that the pyproject admits, as pip pins (`celery==5.4.0`).

A floor is written as a full release (`>=5.4.0`), so the floor is that release.
Standard library only: it runs before the environment it pins exists.
"""

import re
import sys
import tomllib
from pathlib import Path


def floors(pyproject: Path, names: list[str]) -> list[str]:
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = []
    for name in names:
        pattern = re.compile(rf"^{re.escape(name)}(\[[^\]]*\])?\s*>=\s*(\d+\.\d+\.\d+)\b")
        found = [match for dependency in dependencies if (match := pattern.match(dependency))]
        if not found:
            raise SystemExit(f"{pyproject} gives {name} no floor such as >=1.2.3")
        pins.append(f"{name}=={found[0].group(2)}")
    return pins


if __name__ == "__main__":
    print(" ".join(floors(Path(sys.argv[1]), sys.argv[2:])))
