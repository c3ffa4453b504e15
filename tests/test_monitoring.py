"""The monitoring switch's files, in every render that has them (no engine
needed): Prometheus's configuration and alert rules pass promtool, every
dashboard query is valid PromQL on a provisioned data source, and the compose
file publishes the monitoring pages on the loopback interface only.

promtool comes with Debian's `prometheus` package (`.ci/run` installs it).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import all_combinations, combination_id

# The workflow and Kubernetes switches change no monitoring file
# (test_answers.py shows each adds or removes only its own files), so one of
# their values is enough here.
WITH_MONITORING = all_combinations(
    use_monitoring=True, use_github_actions=True, use_kubernetes=True
)
# Grafana's own variables, and what a query gets for them when it is checked.
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
# Every template variable is multi-valued with "All": a regex that matches all.
ALL_VALUES = ".*"
VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
# label_values(selector, label): the selector is the PromQL part.
LABEL_VALUES = re.compile(r"^label_values\((.+),\s*\w+\)$")
DASHBOARDS_MOUNT = "./monitoring/grafana/dashboards"


def promtool(*args: str, cwd: Path) -> None:
    command = shutil.which("promtool")
    if command is None:
        pytest.fail("promtool is missing: apt-get install prometheus (it ships promtool)")
    checked = subprocess.run([command, *args], cwd=cwd, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def dashboards(project: Path) -> dict[str, dict]:
    folder = project / "monitoring/grafana/dashboards"
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.json"))}


def resolve(expression: str, variables: set[str]) -> str:
    """The query as Prometheus would get it, every variable resolved."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in GRAFANA_BUILTINS:
            return GRAFANA_BUILTINS[name]
        assert name in variables, f"${name} is not a variable of the dashboard"
        return ALL_VALUES

    return VARIABLE.sub(value, expression)


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every query of the dashboard, its variables' included, resolved."""
    variables = dashboard["templating"]["list"]
    names = {variable["name"] for variable in variables}
    queries = []
    for variable in variables:
        selector = LABEL_VALUES.match(variable["query"]["query"])
        assert selector, variable
        queries.append(resolve(selector.group(1), names))
    for panel in dashboard["panels"]:
        queries += [resolve(target["expr"], names) for target in panel["targets"]]
    return queries


@pytest.mark.parametrize("combination", WITH_MONITORING, ids=combination_id)
def test_prometheus_configuration_and_rules_pass_promtool(bake, combination, tmp_path):
    project = bake(**combination)
    prometheus = project / "monitoring/prometheus"
    promtool("check", "rules", "alerts.yml", cwd=prometheus)
    promtool("test", "rules", "alerts_test.yml", cwd=prometheus)
    # The full check loads the rule files: from here, not from the container's path.
    config = yaml.safe_load((prometheus / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    config["rule_files"] = [str(prometheus / "alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    promtool("check", "config", "prometheus.yml", cwd=tmp_path)


def test_the_scrape_interval_setting_reaches_the_configuration(bake, tmp_path):
    """The command of compose.monitoring.yaml rewrites the global intervals at
    start: run its sed on the file, and check what Prometheus would read."""
    project = bake()
    compose = yaml.safe_load((project / "compose.monitoring.yaml").read_text())
    [command] = compose["services"]["prometheus"]["command"]
    rewrite = re.match(r'sed -E "([^"]+)" /etc/prometheus/prometheus.yml > ', command)
    assert rewrite, command
    # Compose turns $$ into $, then the shell puts the setting in.
    script = rewrite.group(1).replace("$$PROMETHEUS_SCRAPE_INTERVAL", "7s")
    source = project / "monitoring/prometheus/prometheus.yml"
    rewritten = subprocess.run(
        ["sed", "-E", script.replace("\\\\", "\\"), str(source)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    config = yaml.safe_load(rewritten)
    assert config["global"] == {"scrape_interval": "7s", "evaluation_interval": "7s"}
    assert rewritten.replace("7s", "15s") == source.read_text()


def test_every_alert_rule_says_why_it_fires(bake):
    text = (bake() / "monitoring/prometheus/alerts.yml").read_text()
    rules = [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]
    assert len(rules) >= 6
    for rule in rules:
        assert rule["annotations"]["summary"], rule["alert"]
        # The reason: a comment right under the rule's name.
        reason = re.search(rf"- alert: {rule['alert']}\n\s+# \S", text)
        assert reason, f"{rule['alert']} has no comment that says why it fires"


def test_every_alert_rule_is_made_to_fire_by_its_test(bake):
    prometheus = bake() / "monitoring/prometheus"
    rules = yaml.safe_load((prometheus / "alerts.yml").read_text())["groups"]
    names = {rule["alert"] for group in rules for rule in group["rules"]}
    tests = yaml.safe_load((prometheus / "alerts_test.yml").read_text())["tests"]
    fired = {
        check["alertname"]
        for test in tests
        for check in test["alert_rule_test"]
        if check["exp_alerts"]
    }
    assert fired == names


@pytest.mark.parametrize(
    ("serializer", "accepted"), [("json", ["json"]), ("pickle", ["json", "pickle"])]
)
def test_flower_reads_the_workers_answers_in_their_serializer(bake, serializer, accepted):
    """Workers answer remote control in the task serializer; Flower accepts it."""
    project = bake(task_serializer=serializer)
    settings: dict = {}
    exec((project / "monitoring/flower/celeryconfig.py").read_text(), settings)
    assert settings["accept_content"] == accepted
    dockerfile = (project / "monitoring/flower/Dockerfile").read_text()
    assert 'CMD ["celery", "--config", "celeryconfig", "flower"' in dockerfile


def test_every_dashboard_query_is_valid_promql(bake, tmp_path):
    """Each query, variables resolved, checked by promtool as a recording rule."""
    project = bake()
    queries = [
        query for board in dashboards(project).values() for query in dashboard_queries(board)
    ]
    assert len(queries) >= 25
    rules = [
        {"record": f"dashboard:query:{index}", "expr": query} for index, query in enumerate(queries)
    ]
    (tmp_path / "queries.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]})
    )
    promtool("check", "rules", "queries.yml", cwd=tmp_path)


def test_a_broken_query_is_caught(tmp_path):
    rules = {"groups": [{"name": "broken", "rules": [{"record": "x", "expr": "sum(rate(x[1m])"}]}]}
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(rules))
    with pytest.raises(AssertionError):
        promtool("check", "rules", "broken.yml", cwd=tmp_path)


def test_dashboards_use_the_provisioned_data_source(bake):
    project = bake()
    provisioning = project / "monitoring/grafana/provisioning"
    sources = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    assert sources["apiVersion"] == 1
    uids = {source["uid"] for source in sources["datasources"]}
    assert [source["url"] for source in sources["datasources"]] == ["http://prometheus:9090"]
    boards = dashboards(project)
    assert set(boards) == {
        "api.json",
        "celery.json",
        "postgres.json",
        "rabbitmq.json",
        "redis.json",
    }
    assert len({board["uid"] for board in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert board["panels"], name
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] in uids, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] in uids, (name, panel["title"])
        for variable in board["templating"]["list"]:
            assert variable["datasource"]["uid"] in uids, (name, variable["name"])


def test_grafana_loads_the_dashboards_from_where_compose_mounts_them(bake):
    project = bake()
    providers = yaml.safe_load(
        (project / "monitoring/grafana/provisioning/dashboards/dashboards.yml").read_text()
    )
    assert providers["apiVersion"] == 1
    [provider] = providers["providers"]
    compose = yaml.safe_load((project / "compose.monitoring.yaml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts[DASHBOARDS_MOUNT] == provider["options"]["path"]


def test_monitoring_pages_are_published_on_the_loopback_only(bake):
    project = bake()
    compose = yaml.safe_load((project / "compose.monitoring.yaml").read_text())
    services = compose["services"]
    published = {name for name, service in services.items() if "ports" in service}
    assert published == {"prometheus", "alertmanager", "grafana", "flower"}
    for name in published:
        for port in services[name]["ports"]:
            assert port.startswith("${MONITORING_PUBLISH_ADDRESS:-127.0.0.1}:"), (name, port)
    # Every file a service mounts is in the project.
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (project / source).exists(), (name, source)
    # The workers send the events that Flower turns into metrics.
    for worker in ("worker", "worker-long"):
        assert services[worker]["environment"]["WORKER_SEND_TASK_EVENTS"] == "true"


def test_env_makes_compose_start_the_monitoring_too(bake):
    env = (bake() / ".env").read_text()
    assert "\nCOMPOSE_FILE=compose.yaml:compose.monitoring.yaml\n" in env
