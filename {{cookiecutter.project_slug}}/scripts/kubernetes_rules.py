"""Print compose's alert rules as a PrometheusRule: `make kubernetes-monitoring`.

    python3 scripts/kubernetes_rules.py | kubectl apply --server-side -f -

The rules have one source, monitoring/prometheus/alerts.yml, which compose's
Prometheus reads; the Prometheus operator reads them from this resource. The
file goes under `spec` as it is, each line indented (its top level, `groups`,
is the resource's), so nothing is parsed and its comments come along.
Standard library only, like scripts/kubernetes_secrets.py.
"""

import sys
from pathlib import Path

from kubernetes_secrets import NAMESPACE

PROJECT = Path(__file__).resolve().parents[1]
RULES = PROJECT / "monitoring/prometheus/alerts.yml"
HEADER = f"""\
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: alerts
  namespace: {NAMESPACE}
  labels:
    app.kubernetes.io/name: {{ cookiecutter.project_slug | kubernetes_name }}
spec:
"""


def prometheus_rule(rules: str) -> str:
    return HEADER + "".join(
        f"  {line}" if line.strip() else line for line in rules.splitlines(True)
    )


if __name__ == "__main__":
    sys.stdout.write(prometheus_rule(RULES.read_text()))
