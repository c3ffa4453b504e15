"""Write compose's alert rules as a PrometheusRule: `make kubernetes-monitoring`.

    python3 scripts/kubernetes_rules.py   # deploy/kubernetes/monitoring/prometheus-rule.yaml

The rules have one source, monitoring/prometheus/alerts.yml, which compose's
Prometheus reads; the Prometheus operator reads them from this resource, which
deploy/kubernetes/monitoring/kustomization.yaml lists and gives its namespace
and labels. Written again by each `make kubernetes-monitoring` and git-ignored,
like the local overlay's .env.secrets: alerts.yml stays the file to edit. It
goes under `spec` as it is, each line indented (its top level, `groups`, is
the resource's), so nothing is parsed and its comments come along.
Standard library only, like scripts/kubernetes_secrets.py.
"""

import re
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
RULES = PROJECT / "monitoring/prometheus/alerts.yml"
PROMETHEUS_RULE = PROJECT / "deploy/kubernetes/monitoring/prometheus-rule.yaml"
HEADER = """\
# Written by scripts/kubernetes_rules.py from monitoring/prometheus/alerts.yml:
# edit that file, then run `make kubernetes-monitoring`.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: alerts
spec:
"""


def prometheus_rule(rules: str) -> str:
    # Every line that is not empty, blank ones of a block scalar included.
    return HEADER + re.sub(r"(?m)^(?!$)", "  ", rules)


def main() -> int:
    PROMETHEUS_RULE.write_text(prometheus_rule(RULES.read_text()))
    print(f"wrote {PROMETHEUS_RULE.relative_to(PROJECT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
